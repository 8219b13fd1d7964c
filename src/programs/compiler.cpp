// Compile cache: <cache>/programs/<key>/ holds program.{cpp,cu}, include/gqa/abi.h, program.so,
// compile.log and outcome.json. An entry is built in a private temporary folder and renamed into place,
// so concurrent evaluators never see a half-written entry.
#include "programs/compiler.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/process.h"
#include "programs/sha256.h"

namespace fs = std::filesystem;

namespace gqa {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string cxx_compiler() { return env_or("GQA_CXX", "c++"); }

std::string nvcc_compiler() { return nvcc_path(); }

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// The host CPU's identity for -march=native (model name and feature flags), so that a cache shared
// between machines never hands one CPU's code to another.
std::string cpu_identity() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model, flags;
  while (std::getline(in, line)) {
    if (model.empty() && line.rfind("model name", 0) == 0) model = line;
    if (flags.empty() && line.rfind("flags", 0) == 0) flags = line;
    if (!model.empty() && !flags.empty()) break;
  }
  return model + "\n" + flags;
}

std::vector<std::string> compile_command(Target t, Output out, const std::string& src, const std::string& so,
                                         const std::string& include_dir, const std::string& arch,
                                         const std::vector<std::string>& extra) {
  std::vector<std::string> cmd;
  if (out == Output::DeviceLto) {  // relocatable device code as LTO IR only (no host object, no machine code)
    const std::string num = arch.substr(3);
    cmd = {nvcc_compiler(), "-std=c++17", "-O3", "-rdc=true", "-fatbin",
           "-gencode=arch=compute_" + num + ",code=lto_" + num, "-I" + include_dir, "-o", so, src};
  } else if (t == Target::Cpu) {
    cmd = {cxx_compiler(), "-std=c++17", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-Wall",
           "-I" + include_dir, "-o", so, src};
  } else {
    const std::string num = arch.substr(3);  // "sm_90a" → "90a"
    cmd = {nvcc_compiler(), "-std=c++17", "-O3", "-shared", "-Xcompiler", "-fPIC",
           "-gencode=arch=compute_" + num + ",code=sm_" + num, "-lineinfo", "-I" + include_dir, "-o", so, src};
  }
  cmd.insert(cmd.end() - 3, extra.begin(), extra.end());
  return cmd;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

std::string nvcc_path() {
  if (const char* v = std::getenv("GQA_NVCC"); v && *v) return v;
  if (fs::exists("/usr/local/cuda/bin/nvcc")) return "/usr/local/cuda/bin/nvcc";
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && fs::exists(dir + "/nvcc")) return dir + "/nvcc";
  return "nvcc";
}

std::string_view target_name(Target t) { return t == Target::Cpu ? "cpu" : "cuda"; }

Target parse_target(std::string_view name) {
  if (name == "cpu") return Target::Cpu;
  if (name == "cuda") return Target::Cuda;
  fail("programs", "unknown target '{}' (expected cpu or cuda)", name);
}

Target target_of_path(const std::string& path) {
  return fs::path(path).extension() == ".cu" ? Target::Cuda : Target::Cpu;
}

std::string default_cache_dir() {
  if (const char* v = std::getenv("GQA_CACHE_DIR"); v && *v) return v;
  if (const char* v = std::getenv("XDG_CACHE_HOME"); v && *v) return std::string(v) + "/gqa-evolve";
  return env_or("HOME", "/tmp") + "/.cache/gqa-evolve";
}

std::string compiler_version(Target t) {
  static std::mutex mu;
  static std::string versions[2];
  std::lock_guard lock(mu);
  std::string& v = versions[t == Target::Cpu ? 0 : 1];
  if (v.empty()) {
    ProcessOptions po;
    po.argv = {t == Target::Cpu ? cxx_compiler() : nvcc_compiler(), "--version"};
    po.timeout_seconds = 30;
    ProcessResult r = run_process(po);
    if (!r.ok())
      fail("programs", "{} --version failed ({}): no {} compiler to build {} programs", po.argv[0], r.describe(),
           t == Target::Cpu ? "C++" : "CUDA", target_name(t));
    v = r.out;
  }
  return v;
}

std::string detect_cuda_arch() {
  ProcessOptions po;
  po.argv = {"nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader", "--id=0"};
  po.timeout_seconds = 20;
  ProcessResult r;
  try {
    r = run_process(po);
  } catch (const Error&) {
    return "";
  }
  if (!r.ok()) return "";
  std::string cap = first_line(r.out);
  const auto dot = cap.find('.');
  if (dot == std::string::npos) return "";
  std::string arch = "sm_" + cap.substr(0, dot) + cap.substr(dot + 1, 1);
  if (arch == "sm_90" || arch == "sm_100" || arch == "sm_120") arch += "a";
  return arch;
}

CompileResult compile_program(const std::string& source, const std::string& name, const CompileOptions& o) {
  const std::string cache = o.cache_dir.empty() ? default_cache_dir() : o.cache_dir;
  std::string arch;
  if (o.target == Target::Cuda) {
    arch = o.cuda_arch.empty() ? detect_cuda_arch() : o.cuda_arch;
    if (arch.empty())
      fail("programs", "{}: no GPU found to choose the CUDA architecture for; pass --cuda-arch (e.g. sm_90a)", name);
    if (arch.rfind("sm_", 0) != 0 || arch.size() < 5)
      fail("programs", "CUDA architecture '{}' is not of the form sm_XY (e.g. sm_90a)", arch);
  } else {
    arch = cpu_identity();
  }
  const std::string version = compiler_version(o.target);
  if (o.output == Output::DeviceLto && o.target != Target::Cuda)
    fail("programs", "{}: device code (LTO IR) is compiled for the cuda target only", name);
  const std::string ext = o.target == Target::Cpu ? ".cpp" : ".cu";
  const std::string artifact = o.output == Output::DeviceLto ? "program.fatbin" : "program.so";
  // Flags as the key sees them: the command with placeholder paths (the paths differ per entry).
  const auto key_cmd = compile_command(o.target, o.output, "SRC", "SO", "INC",
                                       o.target == Target::Cuda ? arch : "native", o.extra_flags);
  Sha256 h;
  const std::string flags = join(key_cmd);  // named: views of temporaries would dangle in the loop below
  for (std::string_view part : {std::string_view("gqa-program-cache-v1"), std::string_view(source),
                                abi_header_text(), decode_abi_header_text(), std::string_view(flags),
                                std::string_view(version), std::string_view(arch)}) {
    h.update(std::to_string(part.size())).update(":").update(part);
  }
  CompileResult r;
  r.key = h.hex();
  r.dir = cache + "/programs/" + r.key;
  const std::string outcome_path = r.dir + "/outcome.json";
  if (o.use_cache && fs::exists(outcome_path)) {
    try {
      auto j = nlohmann::json::parse(read_file(outcome_path, "programs"));
      r.ok = j.at("ok").get<bool>();
      r.command = j.at("command").get<std::string>();
      r.log = read_file(r.dir + "/compile.log", "programs");
      r.cached = true;
      if (r.ok) r.so_path = r.dir + "/" + artifact;
      if (!r.ok || fs::exists(r.so_path)) return r;
    } catch (const std::exception&) {
      // A damaged entry is rebuilt below.
    }
    const std::string key = r.key, dir = r.dir;
    r = CompileResult{};
    r.key = key;
    r.dir = dir;
  }

  std::error_code ec;
  fs::create_directories(cache + "/programs", ec);
  const std::string tmp = fmt::format("{}/programs/tmp-{}-{}", cache, r.key.substr(0, 16), getpid());
  fs::remove_all(tmp, ec);
  if (!fs::create_directories(tmp + "/include/gqa", ec))
    fail("programs", "{}: cannot create the compile cache folder: {}", tmp, ec ? ec.message() : "exists");
  write_file_atomic(tmp + "/program" + ext, source, "programs");
  write_file_atomic(tmp + "/include/gqa/abi.h", abi_header_text(), "programs");
  write_file_atomic(tmp + "/include/gqa/decode_abi.cuh", decode_abi_header_text(), "programs");
  const auto cmd = compile_command(o.target, o.output, tmp + "/program" + ext, tmp + "/" + artifact,
                                   tmp + "/include", arch, o.extra_flags);
  ProcessOptions po;
  po.argv = cmd;
  po.timeout_seconds = o.timeout_seconds;
  ProcessResult pr = run_process(po);
  r.seconds = pr.seconds;
  r.timed_out = pr.timed_out;
  r.ok = pr.ok() && fs::exists(tmp + "/" + artifact);
  r.command = join(compile_command(o.target, o.output, r.dir + "/program" + ext, r.dir + "/" + artifact,
                                   r.dir + "/include", arch, o.extra_flags));
  r.log = pr.out + pr.err;
  if (!pr.ok()) r.log += fmt::format("\n[compiler {}]\n", pr.describe());
  write_file_atomic(tmp + "/compile.log", r.log, "programs");
  nlohmann::json outcome{{"ok", r.ok}, {"command", r.command}, {"seconds", r.seconds}, {"name", name},
                         {"target", target_name(o.target)}};
  write_file_atomic(tmp + "/outcome.json", outcome.dump(2), "programs");
  if (pr.timed_out) {  // a timeout says more about the machine's load than the program: not cached
    r.dir = tmp;
    return r;
  }
  fs::remove_all(r.dir, ec);
  fs::rename(tmp, r.dir, ec);
  if (ec) {  // another process won the race: its entry is equivalent
    fs::remove_all(tmp, ec);
  }
  if (r.ok) r.so_path = r.dir + "/" + artifact;
  return r;
}

ProgramEntries program_entries(const std::string& source) {
  // Comments blanked (a mention in a comment defines nothing); string literals are rare enough in programs to
  // be left as they are.
  std::string text = source;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == '/' && text[i + 1] == '/') {
      while (i < text.size() && text[i] != '\n') text[i++] = ' ';
    } else if (text[i] == '/' && text[i + 1] == '*') {
      const size_t end = text.find("*/", i + 2);
      const size_t stop = end == std::string::npos ? text.size() : end + 2;
      for (; i < stop; ++i)
        if (text[i] != '\n') text[i] = ' ';
      --i;
    }
  }
  auto defines = [&](std::string_view name) {
    for (size_t at = text.find(name); at != std::string::npos; at = text.find(name, at + 1)) {
      const bool start = at == 0 || !(std::isalnum(static_cast<unsigned char>(text[at - 1])) || text[at - 1] == '_');
      size_t k = at + name.size();
      while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) ++k;
      if (start && k < text.size() && text[k] == '(') return true;
    }
    return false;
  };
  return ProgramEntries{.host = defines("gqa_attention"), .device = defines("gqa_decode_attend_v2")};
}

}  // namespace gqa
