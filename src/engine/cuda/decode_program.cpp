// Linking and loading attention programs' device entries into the persistent decode step (decode_program.h).
#include "engine/cuda/decode_program.h"

#include <nvJitLink.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include "common/error.h"
#include "engine/cuda/cuda_check.h"
#include "programs/sha256.h"

// The step's LTO IR (cmake/LtoBlob.cmake).
extern "C" const char gqa_persistent_step_lto[];
extern "C" const char gqa_persistent_step_lto_end[];

namespace gqa::cuda {

namespace fs = std::filesystem;

std::string_view persistent_step_lto() {
  return std::string_view(gqa_persistent_step_lto,
                          static_cast<size_t>(gqa_persistent_step_lto_end - gqa_persistent_step_lto));
}

namespace {

std::string nvjitlink_version() {
  unsigned major = 0, minor = 0;
  if (nvJitLinkVersion(&major, &minor) != NVJITLINK_SUCCESS) return "unknown";
  return std::to_string(major) + "." + std::to_string(minor);
}

// Owns an nvJitLink handle; the logs of a failed call go into the error.
class Linker {
 public:
  explicit Linker(const std::vector<std::string>& options) {
    std::vector<const char*> argv;
    for (const auto& o : options) argv.push_back(o.c_str());
    check(nvJitLinkCreate(&h_, static_cast<uint32_t>(argv.size()), argv.data()), "nvJitLinkCreate");
  }
  ~Linker() {
    if (h_) nvJitLinkDestroy(&h_);
  }
  Linker(const Linker&) = delete;
  Linker& operator=(const Linker&) = delete;

  void add(std::string_view data, const char* name) {
    check(nvJitLinkAddData(h_, NVJITLINK_INPUT_FATBIN, data.data(), data.size(), name),
          std::string("adding ") + name);
  }
  void complete() { check(nvJitLinkComplete(h_), "linking"); }
  std::string cubin() {
    size_t n = 0;
    check(nvJitLinkGetLinkedCubinSize(h_, &n), "nvJitLinkGetLinkedCubinSize");
    std::string out(n, '\0');
    check(nvJitLinkGetLinkedCubin(h_, out.data()), "nvJitLinkGetLinkedCubin");
    return out;
  }
  std::string info_log() {
    size_t n = 0;
    if (nvJitLinkGetInfoLogSize(h_, &n) != NVJITLINK_SUCCESS || n == 0) return "";
    std::string log(n, '\0');
    nvJitLinkGetInfoLog(h_, log.data());
    return std::string(log.c_str());
  }

 private:
  void check(nvJitLinkResult r, const std::string& what) {
    if (r == NVJITLINK_SUCCESS) return;
    std::string log;
    size_t n = 0;
    if (h_ && nvJitLinkGetErrorLogSize(h_, &n) == NVJITLINK_SUCCESS && n > 0) {
      log.assign(n, '\0');
      nvJitLinkGetErrorLog(h_, log.data());
      log = log.c_str();
    }
    fail("programs", "device link of the attention program's device entry failed while {} (nvJitLink error {}){}{}",
         what, static_cast<int>(r), log.empty() ? "" : ":\n", log);
  }
  nvJitLinkHandle h_ = nullptr;
};

}  // namespace

DecodeLink link_decode_program(std::string_view program_lto, const std::string& kernel, const std::string& arch,
                               const std::string& cache_dir) {
  return link_with_program(persistent_step_lto(), "persistent_step", program_lto, kernel, arch, cache_dir);
}

DecodeLink link_with_program(std::string_view base_lto, const char* base_name, std::string_view program_lto,
                             const std::string& kernel, const std::string& arch, const std::string& cache_dir) {
  if (program_lto.empty()) fail("programs", "device link: the program's LTO IR is empty");
  DecodeLink r;
  Sha256 h;
  const std::string version = nvjitlink_version();
  for (std::string_view part : {std::string_view("gqa-decode-link-v1"), base_lto, program_lto,
                                std::string_view(kernel), std::string_view(arch), std::string_view(version)})
    h.update(std::to_string(part.size())).update(":").update(part);
  r.key = h.hex();
  const std::string path = cache_dir.empty() ? "" : cache_dir + "/decode-link/" + r.key + ".cubin";
  if (!path.empty() && fs::exists(path)) {
    r.cubin = read_file(path, "programs");
    if (!r.cubin.empty()) {
      r.cached = true;
      return r;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  Linker link({"-arch=" + arch, "-lto", "-O3", "-kernels-used=" + kernel, "-variables-used=gqa_decode_plan"});
  link.add(base_lto, base_name);
  link.add(program_lto, "program");
  link.complete();
  r.cubin = link.cubin();
  r.log = link.info_log();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!path.empty()) {
    std::error_code ec;
    fs::create_directories(cache_dir + "/decode-link", ec);
    write_file_atomic(path, r.cubin, "programs");
  }
  return r;
}

std::string check_decode_plan(const gqa_decode_plan_v2& p, int head_dim) {
  if (p.split_keys < 1 || p.split_keys > (1 << 20))
    return "gqa_decode_plan.split_keys " + std::to_string(p.split_keys) + " is outside 1..1048576";
  if (p.kv_tile_kib < 8 || p.kv_tile_kib > 64 || p.kv_tile_kib * 1024 % (4 * head_dim) != 0)
    return "gqa_decode_plan.kv_tile_kib " + std::to_string(p.kv_tile_kib) +
           " is outside 8..64 or holds no whole number of keys of head_dim " + std::to_string(head_dim);
  if (p.merge_chunk < 0 || p.merge_chunk > 64)
    return "gqa_decode_plan.merge_chunk " + std::to_string(p.merge_chunk) + " is outside 0..64";
  return "";
}

LoadedDecodeProgram::LoadedDecodeProgram(const DecodeLink& link, const std::string& kernel, const std::string& name) {
  GQA_CUDA_CHECK(cudaLibraryLoadData(&lib_, link.cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  cudaKernel_t k = nullptr;
  GQA_CUDA_CHECK(cudaLibraryGetKernel(&k, lib_, kernel.c_str()));
  kernel_.fn = reinterpret_cast<const void*>(k);
  kernel_.name = kernel;
  void* dptr = nullptr;
  size_t bytes = 0;
  if (cudaLibraryGetGlobal(&dptr, &bytes, lib_, "gqa_decode_plan") == cudaSuccess) {
    if (bytes != sizeof(gqa_decode_plan_v2))
      fail("programs", "{}: gqa_decode_plan is {} bytes, not a gqa_decode_plan_v2 ({} bytes)", name, bytes,
           sizeof(gqa_decode_plan_v2));
    GQA_CUDA_CHECK(cudaMemcpy(&plan_.plan, dptr, sizeof(plan_.plan), cudaMemcpyDeviceToHost));
    plan_.has = true;
  } else {
    (void)cudaGetLastError();  // the lookup's "not found" is not an error of the engine
  }
}

LoadedDecodeProgram::~LoadedDecodeProgram() {
  if (lib_) cudaLibraryUnload(lib_);
}

}  // namespace gqa::cuda
