// Compiling attention programs into shared objects: the system C++ compiler (CPU target) or nvcc (CUDA
// target), with an on-disk cache keyed by SHA-256 of source, ABI header, flags, compiler version and
// architecture. Failures are cached too, and every outcome keeps its compile log.
#pragma once
#include <string>
#include <vector>

namespace gqa {

enum class Target { Cpu, Cuda };
std::string_view target_name(Target t);
// "cpu" | "cuda"; throws "[programs] unknown target 'x' (expected cpu or cuda)".
Target parse_target(std::string_view name);
// The target a source file is written for, from its extension: .cu → cuda, anything else → cpu.
Target target_of_path(const std::string& path);

// What a compile makes: the program's shared object (its host entry, gqa/abi.h), or its device code as LTO IR
// (CUDA only: the device entry of gqa/decode_abi.cuh, linked into the engine's persistent step at run time).
enum class Output { SharedObject, DeviceLto };

struct CompileOptions {
  Target target = Target::Cpu;
  Output output = Output::SharedObject;
  std::string cache_dir;           // empty: default_cache_dir()
  std::string cuda_arch;           // e.g. "sm_90a"; empty: from the GPU (nvidia-smi), else an error
  std::vector<std::string> extra_flags;
  double timeout_seconds = 300;
  bool use_cache = true;           // false: compile even when a cached outcome exists (and overwrite it)
};

struct CompileResult {
  bool ok = false;
  bool cached = false;       // the outcome came from the cache
  std::string key;           // SHA-256 hex of everything that determines the output
  std::string dir;           // cache entry: source, include/, program.so, compile.log, outcome.json
  std::string so_path;       // when ok: the shared object, or (Output::DeviceLto) the LTO IR fatbin
  std::string command;       // the compiler command line
  std::string log;           // compiler output (warnings, errors), or why it could not run
  double seconds = 0;        // compile time of this call (0 when cached)
  bool timed_out = false;    // the compiler was killed at options.timeout_seconds (never cached)
};

// $GQA_CACHE_DIR, else $XDG_CACHE_HOME/gqa-evolve, else ~/.cache/gqa-evolve.
std::string default_cache_dir();

// The ABI headers' text compiled into this binary (programs are built against exactly these): gqa/abi.h and
// gqa/decode_abi.cuh.
std::string_view abi_header_text();
std::string_view decode_abi_header_text();
// The engine's own persistent-step attention as a program (examples/qwen3_gqa/persistent_program.cu).
std::string_view stock_decode_program_text();

// Which entries a program's text defines: the host entry gqa_attention (gqa/abi.h) and the device entry
// gqa_decode_attend_v2 (gqa/decode_abi.cuh), recognised by name in the text (comments excluded).
struct ProgramEntries {
  bool host = false, device = false;
};
ProgramEntries program_entries(const std::string& source);

// Compiles `source` (the program's text; `name` only labels logs). Never throws for a bad program: a
// failed compile is a result with ok = false and the log. Throws gqa::Error when the cache folder cannot
// be written or no compiler exists for the target.
CompileResult compile_program(const std::string& source, const std::string& name, const CompileOptions& options);

// The nvcc that compiles CUDA programs: $GQA_NVCC, else /usr/local/cuda/bin/nvcc, else the first on $PATH
// ("nvcc" when there is none).
std::string nvcc_path();

// The compiler's identity as it goes into cache keys (`--version` output), cached per process.
std::string compiler_version(Target t);
// sm_XY of GPU 0 from nvidia-smi ("sm_90a" on Hopper, whose arch-specific features need the 'a');
// empty when there is no GPU or no nvidia-smi.
std::string detect_cuda_arch();

}  // namespace gqa
