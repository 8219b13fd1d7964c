// Token-level checks on the source as the compiler's first translation phases leave it (line splices
// joined, lone carriage returns as newlines) with comments and literals blanked: identifiers against a
// deny list, #include lines against an allow list, #pragma against an allow list, marker lines counted and
// the text around the block compared. The compiled object's imports are checked separately (imports.h).
#include "evaluate/static_check.h"

#include <regex>
#include <set>
#include <sstream>

#include "common/error.h"

namespace gqa::eval {

namespace {

constexpr const char* kStart = "EVOLVE-BLOCK-START";
constexpr const char* kEnd = "EVOLVE-BLOCK-END";

// Identifier → why it is refused.
const std::vector<std::pair<std::string, std::string>>& denied() {
  static const std::vector<std::pair<std::string, std::string>> d = [] {
    std::vector<std::pair<std::string, std::string>> v;
    auto add = [&](const char* why, std::initializer_list<const char*> names) {
      for (const char* n : names) v.emplace_back(n, why);
    };
    add("processes", {"system", "popen", "pclose", "fork", "vfork", "clone", "execl", "execlp", "execle", "execv",
                      "execvp", "execvpe", "execve", "fexecve", "posix_spawn", "posix_spawnp", "kill", "raise",
                      "signal", "sigaction", "ptrace", "prctl"});
    add("exit", {"exit", "_exit", "_Exit", "quick_exit", "abort", "atexit", "at_quick_exit", "terminate", "longjmp",
                 "setjmp", "__builtin_trap"});
    add("files or output", {"fopen", "freopen", "fdopen", "open", "openat", "creat", "fwrite", "write", "writev",
                            "pwrite", "read", "fread", "printf", "fprintf", "puts", "fputs", "putchar", "fputc",
                            "perror", "ofstream", "ifstream", "fstream", "cout", "cerr", "clog", "remove", "rename",
                            "unlink", "mkdir", "ioctl", "fcntl", "dup", "dup2", "mmap", "munmap", "mprotect"});
    add("network", {"socket", "connect", "bind", "listen", "accept", "send", "sendto", "recv", "recvfrom",
                    "getaddrinfo", "gethostbyname"});
    add("dynamic loading or raw system calls", {"dlopen", "dlsym", "dlclose", "syscall", "asm", "__asm__", "__asm",
                                                "getenv", "setenv", "putenv", "unsetenv", "environ"});
    add("allocation (use the workspace)", {"malloc", "calloc", "realloc", "free", "aligned_alloc", "posix_memalign",
                                           "memalign", "valloc", "new", "delete", "alloca", "cudaMalloc",
                                           "cudaMallocAsync", "cudaMallocManaged", "cudaMallocHost", "cudaHostAlloc",
                                           "cudaMallocPitch", "cudaMalloc3D", "cudaFree", "cudaFreeAsync",
                                           "cudaFreeHost", "cuMemAlloc", "cuMemFree"});
    add("synchronisation or device control (breaks graph capture)",
        {"cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize", "cudaDeviceReset",
         "cudaSetDevice", "cudaStreamCreate", "cudaStreamCreateWithFlags", "cudaEventCreate", "cudaMemcpy",
         "cudaMemset", "cudaMemcpyToSymbol", "cudaMemcpyFromSymbol", "cudaDeviceSetLimit", "cudaGraphLaunch",
         "cudaStreamWaitEvent", "cudaDeviceSetCacheConfig"});
    add("threads or sleeping (use OpenMP)", {"thread", "jthread", "pthread_create", "async", "sleep", "usleep",
                                            "nanosleep", "sleep_for", "sleep_until", "this_thread"});
    add("code run at load or unload", {"constructor", "destructor", "ifunc", "init_priority"});
    // (section, alias and weak stay allowed words: what they could do shows in the compiled object's
    // imports and .init_array, checked in imports.cpp.)
    add("linkage tricks", {"_Pragma", "__pragma", "weakref", "symver"});
    add("cache control that would slow the next kernel", {"_mm_clflush", "_mm_clflushopt", "_mm_clwb",
                                                          "__builtin_ia32_clflush", "__builtin_ia32_clflushopt",
                                                          "__builtin_ia32_clwb", "_mm_clevict", "_mm_cldemote"});
    add("stack or frame walking", {"__builtin_frame_address", "__builtin_return_address", "__builtin_extract_return_addr"});
    add("OpenMP settings that outlive the call (use num_threads clauses)",
        {"omp_set_num_threads", "omp_set_dynamic", "omp_set_nested", "omp_set_schedule", "omp_set_max_active_levels",
         "omp_set_default_device", "omp_pause_resource", "omp_pause_resource_all", "omp_alloc", "omp_free"});
    return v;
  }();
  return d;
}

const std::set<std::string>& allowed_includes(Target t) {
  static const std::set<std::string> cpu = {
      "gqa/abi.h", "algorithm", "array", "bit", "cfloat", "climits", "cmath", "cstddef", "cstdint", "cstring",
      "initializer_list", "limits", "numeric", "tuple", "type_traits", "utility", "float.h", "limits.h", "math.h",
      "stddef.h", "stdint.h", "string.h", "omp.h", "immintrin.h", "x86intrin.h", "arm_neon.h"};
  static const std::set<std::string> cuda = [] {
    std::set<std::string> s = cpu;
    for (const char* h : {"gqa/decode_abi.cuh", "cuda_runtime.h", "cuda_bf16.h", "cuda_fp16.h", "cuda_fp8.h", "cuda_pipeline.h", "mma.h",
                          "cooperative_groups.h", "cooperative_groups/reduce.h", "cooperative_groups/memcpy_async.h",
                          "cuda/pipeline", "cuda/barrier", "cuda/ptx", "cuda_awbarrier.h", "cuda/std/cstdint",
                          "cuda/std/limits", "cuda/std/type_traits", "cuda/std/utility"})
      s.insert(h);
    return s;
  }();
  return t == Target::Cpu ? cpu : cuda;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> v;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    v.push_back(line);
  }
  return v;
}

// Lines outside the block: [0, start] and [end, n).
struct Frame {
  int start = -1, end = -1;
  std::vector<std::string> before, after;
};

Frame frame_of(const std::vector<std::string>& lines) {
  Frame f;
  for (int i = 0; i < static_cast<int>(lines.size()); ++i) {
    if (lines[i].find(kStart) != std::string::npos && f.start < 0) f.start = i;
    if (lines[i].find(kEnd) != std::string::npos) f.end = i;
  }
  if (f.start >= 0 && f.end > f.start) {
    f.before.assign(lines.begin(), lines.begin() + f.start + 1);
    f.after.assign(lines.begin() + f.end, lines.end());
  }
  return f;
}

// Translation phases 1-2 as GCC does them: "\r\n" and a lone "\r" end a line, and a backslash followed
// by optional blanks and a newline joins two lines. A joined line keeps its place (the newlines it
// swallowed are appended after it), so line numbers stay those of the file.
std::string splice_lines(const std::string& source) {
  std::string s;
  s.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      s += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      s += source[i];
    }
  }
  std::string out;
  out.reserve(s.size());
  int owed = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      size_t j = i + 1;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
      if (j < s.size() && s[j] == '\n') {
        ++owed;
        i = j;
        continue;
      }
    }
    if (s[i] == '\n') {
      out.append(owed + 1, '\n');
      owed = 0;
      continue;
    }
    out += s[i];
  }
  return out;
}

bool pragma_allowed(const std::string& rest) {
  std::istringstream in(rest);
  std::string a, b;
  in >> a >> b;
  static const std::set<std::string> single = {"omp", "unroll", "nounroll", "once", "STDC", "nv_diag_suppress", "nv_diag_default"};
  static const std::set<std::string> gcc = {"unroll", "ivdep", "optimize", "push_options", "pop_options", "target", "diagnostic"};
  return single.count(a) || (a == "GCC" && gcc.count(b)) || (a == "clang" && b == "loop");
}

}  // namespace

std::string strip_comments_and_strings(const std::string& s) {
  std::string out = s;
  enum { Code, Line, Block, Str, Chr } st = Code;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i], n = i + 1 < s.size() ? s[i + 1] : '\0';
    switch (st) {
      case Code:
        if (c == '/' && n == '/') st = Line, out[i] = ' ';
        else if (c == '/' && n == '*') st = Block, out[i] = ' ';
        else if (c == '"') st = Str;
        else if (c == '\'') st = Chr;
        break;
      case Line:
        if (c == '\n') st = Code;
        else out[i] = ' ';
        break;
      case Block:
        if (c == '*' && n == '/') st = Code, out[i] = out[i + 1] = ' ', ++i;
        else if (c != '\n') out[i] = ' ';
        break;
      case Str:
      case Chr:
        if (c == '\\') {
          out[i] = ' ';
          if (i + 1 < s.size() && s[i + 1] != '\n') out[++i] = ' ';
        } else if ((st == Str && c == '"') || (st == Chr && c == '\'')) {
          st = Code;
        } else if (c != '\n') {
          out[i] = ' ';
        }
        break;
    }
  }
  return out;
}

StaticCheck static_check(const std::string& source, Target target, const std::optional<std::string>& parent) {
  StaticCheck r;
  auto problem = [&](std::string p) {
    r.ok = false;
    r.problems.push_back(std::move(p));
  };
  const auto lines = lines_of(source);
  int starts = 0, ends = 0;
  for (const auto& l : lines) {
    for (size_t p = l.find(kStart); p != std::string::npos; p = l.find(kStart, p + 1)) ++starts;
    for (size_t p = l.find(kEnd); p != std::string::npos; p = l.find(kEnd, p + 1)) ++ends;
  }
  const Frame f = frame_of(lines);
  if (starts != 1 || ends != 1 || f.start < 0 || f.end <= f.start)
    problem(fmt::format("markers: expected one {} line followed by one {} line, found {} and {}", kStart, kEnd, starts, ends));
  if (parent && r.ok) {
    const Frame pf = frame_of(lines_of(*parent));
    if (pf.start < 0) {
      problem("parent: the parent program has no intact EVOLVE-BLOCK markers");
    } else {
      auto diff = [&](const std::vector<std::string>& a, const std::vector<std::string>& b, int line0, const char* where) {
        const size_t n = std::max(a.size(), b.size());
        for (size_t i = 0; i < n; ++i) {
          const std::string x = i < a.size() ? a[i] : "<missing>", y = i < b.size() ? b[i] : "<missing>";
          if (x != y) {
            problem(fmt::format("line {}: edited {} the EVOLVE-BLOCK (only the block may change): '{}' (parent: '{}')",
                                line0 + i + 1, where, x.substr(0, 120), y.substr(0, 120)));
            return;
          }
        }
      };
      diff(f.before, pf.before, 0, "before");
      diff(f.after, pf.after, f.end, "after");
    }
  }

  const std::string spliced = splice_lines(source);
  const std::string code = strip_comments_and_strings(spliced);
  const auto code_lines = lines_of(code);
  const auto spliced_lines = lines_of(spliced);
  const auto& allow = allowed_includes(target);
  static const std::regex include_re(R"(^\s*#\s*include\s*([<"])([^>"]*)[>"])");
  static const std::regex directive_re(R"(^\s*#\s*(include|import|include_next|embed)\b)");
  static const std::regex pragma_re(R"(^\s*#\s*pragma\b(.*)$)");
  for (size_t i = 0; i < code_lines.size(); ++i) {
    std::smatch m;
    if (code_lines[i].find("%:") != std::string::npos)  // (trigraphs are gone in C++17)
      problem(fmt::format("line {}: the digraph spelling of '#' (%:) is not allowed", i + 1));
    if (std::regex_search(code_lines[i], m, pragma_re) && !pragma_allowed(m[1].str()))
      problem(fmt::format("line {}: #pragma{} is not allowed (only omp, unroll, ivdep, once and optimisation pragmas)", i + 1,
                          m[1].str().substr(0, 60)));
  }
  for (size_t i = 0; i < spliced_lines.size(); ++i) {
    std::smatch m;
    if (std::regex_search(spliced_lines[i], m, include_re)) {
      if (!allow.count(m[2].str()))
        problem(fmt::format("line {}: #include {}{}{} is not allowed (only gqa/abi.h, gqa/decode_abi.cuh and standard math/CUDA headers)",
                            i + 1, m[1].str(), m[2].str(), m[1].str() == "<" ? ">" : "\""));
    } else if (i < code_lines.size() && std::regex_search(code_lines[i], directive_re)) {
      problem(fmt::format("line {}: this include directive is not allowed", i + 1));
    }
  }
  // Token pasting could assemble a denied name that no check sees.
  for (size_t i = 0; i < code_lines.size(); ++i)
    if (code_lines[i].find("##") != std::string::npos) problem(fmt::format("line {}: token pasting (##) is not allowed", i + 1));
  static const std::regex ident_re(R"([A-Za-z_][A-Za-z_0-9]*)");
  std::set<std::string> seen;
  for (size_t i = 0; i < code_lines.size(); ++i) {
    const std::string& l = code_lines[i];
    if (l.find("#include") != std::string::npos) continue;
    for (auto it = std::sregex_iterator(l.begin(), l.end(), ident_re); it != std::sregex_iterator(); ++it) {
      const std::string id = it->str();
      for (const auto& [name, why] : denied())
        if (id == name && seen.insert(fmt::format("{}:{}", name, i)).second)
          problem(fmt::format("line {}: '{}' is not allowed in programs ({})", i + 1, name, why));
    }
  }
  return r;
}

}  // namespace gqa::eval
