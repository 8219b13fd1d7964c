// The import allow-lists and the load-time code check, on `nm` and `readelf` output.
#include "evaluate/imports.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/process.h"

namespace gqa::eval {

namespace {

// What a program of either target may import: memory functions, the C++ runtime's harmless parts, libm.
const std::set<std::string>& common_names() {
  static const std::set<std::string> names = [] {
    std::set<std::string> s = {
        // memory
        "memcpy", "memset", "memmove", "memcmp", "__memcpy_chk", "__memset_chk", "__memmove_chk",
        // the C++ runtime's harmless parts: static-local guards, stack protector, unwinding, thread-locals
        "__cxa_guard_acquire", "__cxa_guard_release", "__cxa_guard_abort", "__stack_chk_fail",
        "__gxx_personality_v0", "_Unwind_Resume", "__tls_get_addr", "__cxa_finalize", "__cpu_indicator_init",
        "__cpu_model", "__cpu_features2", "__assert_fail",
        // weak references every shared object carries
        "_ITM_deregisterTMCloneTable", "_ITM_registerTMCloneTable", "__gmon_start__"};
    for (const char* f : {"exp", "exp2", "expm1", "exp10", "log", "log2", "log10", "log1p", "pow", "sqrt", "cbrt",
                          "hypot", "sin", "cos", "tan", "sincos", "asin", "acos", "atan", "atan2", "sinh", "cosh",
                          "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "tgamma", "lgamma", "ceil", "floor",
                          "trunc", "round", "lround", "llround", "rint", "lrint", "llrint", "nearbyint", "fmod",
                          "remainder", "remquo", "fma", "fmax", "fmin", "fdim", "frexp", "ldexp", "modf", "scalbn",
                          "scalbln", "ilogb", "logb", "nextafter", "nexttoward", "copysign", "nan", "fabs"})
      for (const char* suffix : {"", "f", "l"}) {
        s.insert(std::string(f) + suffix);
        s.insert("__" + std::string(f) + suffix + "_finite");
      }
    return s;
  }();
  return names;
}

// CPU target: OpenMP's thread queries and locks (the parallel runtime itself is GOMP_*, allowed below).
const std::set<std::string> kOpenMpNames = {
    "omp_get_thread_num", "omp_get_num_threads", "omp_get_max_threads", "omp_get_num_procs",
    "omp_in_parallel", "omp_get_level", "omp_get_team_size", "omp_get_ancestor_thread_num", "omp_get_wtime",
    "omp_init_lock", "omp_destroy_lock", "omp_set_lock", "omp_unset_lock", "omp_test_lock"};

// CUDA target (programs compiled with -cudart shared, so the runtime's functions are imported by name):
// what launching kernels on the given stream needs, nothing that allocates, synchronises, creates streams,
// events or graphs, or changes the device.
const std::set<std::string> kCudaNames = {
    // nvcc's generated code: the fat binary and kernels registered at load, `kernel<<<...>>>`, and the
    // unregistration it queues with atexit (the worker ends with _exit, so that never runs)
    "__cudaRegisterFatBinary", "__cudaRegisterFatBinaryEnd", "__cudaUnregisterFatBinary", "__cudaRegisterFunction",
    "__cudaRegisterVar", "__cudaPushCallConfiguration", "__cudaPopCallConfiguration", "__cudaLaunchKernel",
    "__cudaGetKernel", "__cxa_atexit",
    // launches and their errors
    "cudaLaunchKernel", "cudaLaunchKernelExC", "cudaGetLastError", "cudaPeekAtLastError", "cudaGetErrorString",
    "cudaGetErrorName",
    // kernel attributes, device attributes, occupancy
    "cudaFuncSetAttribute", "cudaFuncGetAttributes", "cudaDeviceGetAttribute", "cudaGetDevice",
    "cudaOccupancyMaxActiveBlocksPerMultiprocessor", "cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags",
    "cudaOccupancyAvailableDynamicSMemPerBlock", "cudaOccupancyMaxPotentialClusterSize", "cudaOccupancyMaxActiveClusters",
    // stream-ordered fills and copies (on the call's stream: graph capture refuses anything else)
    "cudaMemsetAsync", "cudaMemcpyAsync",
    // the address of a __device__ variable (a query)
    "cudaGetSymbolAddress"};

// nvcc's constructor that registers the fat binary (static: "_ZL24__sti____cudaRegisterAllv").
bool is_cuda_registration(const std::string& name) { return name.find("__sti____cudaRegisterAll") != std::string::npos; }

// Lines of a tool's stdout; the tool must succeed.
std::string run_tool(const std::vector<std::string>& argv) {
  ProcessOptions po;
  po.argv = argv;
  po.timeout_seconds = 30;
  ProcessResult r = run_process(po);
  if (!r.ok()) fail("evaluate", "{} {}: {}: {}", argv[0], argv.back(), r.describe(), r.err.substr(0, 500));
  return r.out;
}

// The functions .init_array points at, by name (local symbols included): its slots are filled by
// R_X86_64_RELATIVE relocations whose addends are the functions' addresses.
std::vector<std::string> init_array_functions(const std::string& so_path, unsigned long addr, unsigned long bytes) {
  std::map<unsigned long, std::string> names;
  std::istringstream syms(run_tool({"nm", so_path}));
  std::string line;
  while (std::getline(syms, line)) {
    std::istringstream f(line);
    std::string a, type, name;
    if (f >> a >> type >> name && (type == "t" || type == "T")) names[std::stoul(a, nullptr, 16)] = name;
  }
  std::vector<std::string> out;
  std::istringstream relocs(run_tool({"readelf", "-W", "-r", so_path}));
  while (std::getline(relocs, line)) {
    std::istringstream f(line);
    std::string off, info, type, addend;
    if (!(f >> off >> info >> type) || off.find_first_not_of("0123456789abcdef") != std::string::npos) continue;
    const unsigned long at = std::stoul(off, nullptr, 16);
    if (at < addr || at >= addr + bytes) continue;
    if (type != "R_X86_64_RELATIVE" || !(f >> addend)) {
      out.push_back(fmt::format("a {} relocation", type));
      continue;
    }
    const auto it = names.find(std::stoul(addend, nullptr, 16));
    out.push_back(it != names.end() ? it->second : fmt::format("code at 0x{}", addend));
  }
  if (out.size() != bytes / 8) out.push_back(fmt::format("{} entries of which {} relocated", bytes / 8, out.size()));
  return out;
}

}  // namespace

std::vector<std::string> cuda_program_flags() {
  // The runtime library of the toolkit whose nvcc compiles (nvcc_path()), as an rpath, so that no loader
  // configuration is needed.
  const std::string nvcc = nvcc_path();
  std::error_code ec;
  const std::filesystem::path bin = std::filesystem::canonical(nvcc, ec).parent_path();
  std::vector<std::string> flags = {"-cudart", "shared"};
  if (!ec) {
    for (const char* lib : {"lib64", "lib"})
      if (std::filesystem::exists(bin.parent_path() / lib / "libcudart.so", ec)) {
        flags.insert(flags.end(), {"-Xlinker", "-rpath=" + (bin.parent_path() / lib).string()});
        break;
      }
  }
  return flags;
}

bool import_allowed(const std::string& symbol, Target target) {
  const std::string name = symbol.substr(0, symbol.find('@'));
  if (common_names().count(name)) return true;
  if (target == Target::Cuda) return kCudaNames.count(name) > 0;
  if (kOpenMpNames.count(name)) return true;
  if (name.rfind("GOMP_", 0) == 0) return true;  // the parallel runtime the compiler emits for pragmas
  // libstdc++'s throw helpers (std::array::at and the like): they only throw.
  return name.rfind("_ZSt", 0) == 0 && name.find("__throw_") != std::string::npos;
}

ImportCheck check_imports(const std::string& so_path, Target target) {
  ImportCheck r;
  auto problem = [&](std::string p) {
    r.ok = false;
    r.problems.push_back(std::move(p));
  };
  std::istringstream undefined(run_tool({"nm", "-D", "--undefined-only", so_path}));
  std::string line;
  while (std::getline(undefined, line)) {
    std::istringstream f(line);
    std::string type, name;
    f >> type >> name;
    if (name.empty()) continue;
    const bool ok = import_allowed(name, target);
    r.report += fmt::format("{} {} {}\n", type, name, ok ? "ok" : "REFUSED");
    if (!ok)
      problem(fmt::format("the compiled program imports '{}', which is not on the allow-list ({})",
                          name.substr(0, name.find('@')),
                          target == Target::Cpu ? "math functions, memcpy/memset/memmove, OpenMP's parallel runtime and "
                                                  "thread queries"
                                                : "math and memory functions, kernel launches and their errors, kernel and "
                                                  "device attributes, occupancy, cudaMemsetAsync/cudaMemcpyAsync"));
  }
  // Code that would run inside dlopen, before the sandbox: IFUNC resolvers and extra constructors.
  std::istringstream defined(run_tool({"nm", "-D", "--defined-only", so_path}));
  while (std::getline(defined, line)) {
    std::istringstream f(line);
    std::string addr, type, name;
    f >> addr >> type >> name;
    if (type == "i") problem(fmt::format("the compiled program defines the IFUNC '{}' (its resolver runs at load time)", name));
  }
  std::istringstream sections(run_tool({"readelf", "-W", "-S", so_path}));
  unsigned long init_addr = 0, init_bytes = 0;
  while (std::getline(sections, line)) {
    for (const char* sec : {".init_array", ".preinit_array", ".ctors"}) {
      const size_t at = line.find(std::string(sec) + " ");
      if (at == std::string::npos) continue;
      std::istringstream f(line.substr(at));
      std::string name, type, addr, off, size;
      f >> name >> type >> addr >> off >> size;
      const unsigned long bytes = std::stoul(size, nullptr, 16);
      if (std::string(sec) == ".init_array") {
        init_addr = std::stoul(addr, nullptr, 16);
        init_bytes = bytes;
      } else if (bytes > 0) {
        problem(fmt::format("the compiled program has code that runs when it is loaded ({} of {} bytes)", sec, bytes));
      }
    }
  }
  // GCC's own frame_dummy is the one entry every shared object has; a CUDA program has nvcc's registration
  // of its fat binary too. Any other entry is a constructor or a global with a dynamic initialiser.
  if (target == Target::Cpu && init_bytes > 8)
    problem(fmt::format("the compiled program has code that runs when it is loaded (.init_array of {} bytes: a "
                        "constructor or a global with a dynamic initialiser)", init_bytes));
  if (target == Target::Cuda) {
    for (const std::string& f : init_array_functions(so_path, init_addr, init_bytes))
      if (f != "frame_dummy" && !is_cuda_registration(f))
        problem(fmt::format("the compiled program has code that runs when it is loaded ('{}' in .init_array: a "
                            "constructor or a global with a dynamic initialiser)", f));
    // With the runtime linked in statically its own imports would be in the object and nothing could be
    // told apart: the evaluator compiles with -cudart shared (cuda_program_flags()).
    if (run_tool({"readelf", "-W", "-d", so_path}).find("[libcudart.so") == std::string::npos)
      problem("the compiled program does not load the CUDA runtime as a shared library (compiled without "
              "-cudart shared?): its imports cannot be checked");
  }
  r.report += r.ok ? "verdict: ok\n" : "verdict: refused\n";
  return r;
}

}  // namespace gqa::eval
