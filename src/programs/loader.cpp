// dlopen with RTLD_NOW (missing symbols fail at load, not mid-generation) and RTLD_LOCAL (a program's
// symbols never satisfy another's).
#include "programs/loader.h"

#include <dlfcn.h>

#include "common/error.h"

namespace gqa {

std::unique_ptr<LoadedProgram> LoadedProgram::open(const std::string& so_path) {
  std::unique_ptr<LoadedProgram> p(new LoadedProgram());
  p->path_ = so_path;
  p->handle_ = dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!p->handle_) fail("programs", "{}: cannot load: {}", so_path, dlerror());
  auto version = reinterpret_cast<gqa_abi_version_fn>(dlsym(p->handle_, "gqa_abi_version"));
  if (!version) fail("programs", "{}: does not export gqa_abi_version (declare it extern \"C\")", so_path);
  if (int v = version(); v != GQA_ABI_VERSION)
    fail("programs", "{}: built for ABI version {}, this binary speaks version {}", so_path, v, GQA_ABI_VERSION);
  p->fn_ = reinterpret_cast<gqa_attention_fn>(dlsym(p->handle_, "gqa_attention"));
  if (!p->fn_) fail("programs", "{}: does not export gqa_attention (declare it extern \"C\")", so_path);
  return p;
}

LoadedProgram::~LoadedProgram() {
  if (handle_) dlclose(handle_);
}

namespace {

void check_compiled(const CompileResult& r, const std::string& source_path) {
  if (r.ok) return;
  const std::string& log = r.log;
  fail("programs", "{}: compile failed (log: {}/compile.log):\n{}", source_path, r.dir,
       log.size() > 4000 ? "..." + log.substr(log.size() - 4000) : log);
}

}  // namespace

ProgramHandle compile_and_load(const std::string& source_path, const CompileOptions& options) {
  ProgramHandle h;
  const std::string source = read_file(source_path, "programs");
  const ProgramEntries entries = program_entries(source);
  if (!entries.host && !entries.device)
    fail("programs", "{}: defines neither gqa_attention (the host entry, gqa/abi.h) nor gqa_decode_attend_v2 (the "
         "device entry, gqa/decode_abi.cuh)", source_path);
  if (entries.device && options.target != Target::Cuda)
    fail("programs", "{}: defines the device entry gqa_decode_attend_v2, which only CUDA programs (.cu) have",
         source_path);
  if (entries.host) {
    h.compile = compile_program(source, source_path, options);
    check_compiled(h.compile, source_path);
    h.program = LoadedProgram::open(h.compile.so_path);
  }
  if (entries.device) {
    CompileOptions d = options;
    d.output = Output::DeviceLto;
    h.device = compile_program(source, source_path, d);
    check_compiled(h.device, source_path);
    h.lto = read_file(h.device.so_path, "programs");
  }
  return h;
}

}  // namespace gqa
