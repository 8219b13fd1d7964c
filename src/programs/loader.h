// Loading a compiled attention program (dlopen, RTLD_LOCAL) and checking its ABI version; and the one
// call most users make: compile-with-cache then load.
#pragma once
#include <memory>
#include <string>

#include "gqa/abi.h"
#include "programs/compiler.h"

namespace gqa {

class LoadedProgram {
 public:
  // Throws "[programs] <path>: ..." when dlopen fails, a symbol is missing or the ABI version differs.
  static std::unique_ptr<LoadedProgram> open(const std::string& so_path);
  ~LoadedProgram();
  LoadedProgram(const LoadedProgram&) = delete;
  LoadedProgram& operator=(const LoadedProgram&) = delete;

  gqa_attention_fn entry() const { return fn_; }
  const std::string& path() const { return path_; }

 private:
  LoadedProgram() = default;
  void* handle_ = nullptr;
  gqa_attention_fn fn_ = nullptr;
  std::string path_;
};

// Reads PROG (a .cpp or .cu file), compiles its entries for `options.target` (cached) and loads the host one:
// the host entry (gqa_attention) into a shared object, loaded here; the device entry of a CUDA program
// (gqa_decode_attend_v2) into LTO IR, which the CUDA engine links into its persistent decode step
// (Engine::set_decode_attention_program). A failed compile throws "[programs] PROG: compile failed (log:
// DIR/compile.log)" followed by the log's tail; a program with neither entry throws naming both.
struct ProgramHandle {
  CompileResult compile;                   // the host entry's (ok = false, empty, when it has none)
  std::unique_ptr<LoadedProgram> program;  // null when the program has no host entry
  CompileResult device;                    // the device entry's (ok = false, empty, when it has none)
  std::string lto;                         // the device entry's LTO IR (empty when it has none)
  double compile_seconds() const { return compile.seconds + device.seconds; }
  bool cached() const { return (!program || compile.cached) && (lto.empty() || device.cached); }
};
ProgramHandle compile_and_load(const std::string& source_path, const CompileOptions& options);

}  // namespace gqa
