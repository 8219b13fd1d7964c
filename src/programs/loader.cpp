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

ProgramHandle compile_and_load(const std::string& source_path, const CompileOptions& options) {
  ProgramHandle h;
  const std::string source = read_file(source_path, "programs");
  h.compile = compile_program(source, source_path, options);
  if (!h.compile.ok) {
    const std::string& log = h.compile.log;
    fail("programs", "{}: compile failed (log: {}/compile.log):\n{}", source_path, h.compile.dir,
         log.size() > 4000 ? "..." + log.substr(log.size() - 4000) : log);
  }
  h.program = LoadedProgram::open(h.compile.so_path);
  return h;
}

}  // namespace gqa
