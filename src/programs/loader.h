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

// Reads PROG (a .cpp or .cu file), compiles it for `options.target` (cached) and loads it. A failed
// compile throws "[programs] PROG: compile failed (log: DIR/compile.log)" followed by the log's tail.
struct ProgramHandle {
  CompileResult compile;
  std::unique_ptr<LoadedProgram> program;
};
ProgramHandle compile_and_load(const std::string& source_path, const CompileOptions& options);

}  // namespace gqa
