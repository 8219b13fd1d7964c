// The import allow-list and the load-time code check, on `nm -D` and `readelf -S` output.
#include "evaluate/imports.h"

#include <set>
#include <sstream>

#include "common/error.h"
#include "common/process.h"

namespace gqa::eval {

namespace {

const std::set<std::string>& allowed_names() {
  static const std::set<std::string> names = [] {
    std::set<std::string> s = {
        // memory
        "memcpy", "memset", "memmove", "memcmp", "__memcpy_chk", "__memset_chk", "__memmove_chk",
        // OpenMP queries (the parallel runtime itself is GOMP_*, allowed below)
        "omp_get_thread_num", "omp_get_num_threads", "omp_get_max_threads", "omp_get_num_procs",
        "omp_in_parallel", "omp_get_level", "omp_get_team_size", "omp_get_ancestor_thread_num", "omp_get_wtime",
        "omp_init_lock", "omp_destroy_lock", "omp_set_lock", "omp_unset_lock", "omp_test_lock",
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

// Lines of a tool's stdout; the tool must succeed.
std::string run_tool(const std::vector<std::string>& argv) {
  ProcessOptions po;
  po.argv = argv;
  po.timeout_seconds = 30;
  ProcessResult r = run_process(po);
  if (!r.ok()) fail("evaluate", "{} {}: {}: {}", argv[0], argv.back(), r.describe(), r.err.substr(0, 500));
  return r.out;
}

}  // namespace

bool import_allowed(const std::string& symbol) {
  const std::string name = symbol.substr(0, symbol.find('@'));
  if (allowed_names().count(name)) return true;
  if (name.rfind("GOMP_", 0) == 0) return true;  // the parallel runtime the compiler emits for pragmas
  // libstdc++'s throw helpers (std::array::at and the like): they only throw.
  return name.rfind("_ZSt", 0) == 0 && name.find("__throw_") != std::string::npos;
}

ImportCheck check_imports(const std::string& so_path, Target target) {
  ImportCheck r;
  if (target == Target::Cuda) {
    r.report = "not checked on the CUDA target (the CUDA runtime is linked into the program statically)";
    return r;
  }
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
    const bool ok = import_allowed(name);
    r.report += fmt::format("{} {} {}\n", type, name, ok ? "ok" : "REFUSED");
    if (!ok)
      problem(fmt::format("the compiled program imports '{}', which is not on the allow-list (math functions, "
                          "memcpy/memset/memmove, OpenMP's parallel runtime and thread queries)",
                          name.substr(0, name.find('@'))));
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
  while (std::getline(sections, line)) {
    for (const char* sec : {".init_array", ".preinit_array", ".ctors"}) {
      const size_t at = line.find(std::string(sec) + " ");
      if (at == std::string::npos) continue;
      std::istringstream f(line.substr(at));
      std::string name, type, addr, off, size;
      f >> name >> type >> addr >> off >> size;
      const unsigned long bytes = std::stoul(size, nullptr, 16);
      // GCC's own frame_dummy is the one entry every shared object has.
      if (bytes > (std::string(sec) == ".init_array" ? 8ul : 0ul))
        problem(fmt::format("the compiled program has code that runs when it is loaded ({} of {} bytes: a constructor "
                            "or a global with a dynamic initialiser)", sec, bytes));
    }
  }
  r.report += r.ok ? "verdict: ok\n" : "verdict: refused\n";
  return r;
}

}  // namespace gqa::eval
