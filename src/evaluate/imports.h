// What a compiled program may call: the dynamic symbols its shared object imports, checked against an
// allow-list (CPU: libm, memcpy/memset/memmove, OpenMP's parallel runtime and thread queries; CUDA: the
// same less OpenMP, plus the runtime calls a kernel launch needs), and no code that runs when it is loaded
// (constructors, IFUNC resolvers; on CUDA, nvcc's registration of the fat binary only), whatever the
// source looked like.
#pragma once
#include <string>
#include <vector>

#include "programs/compiler.h"

namespace gqa::eval {

struct ImportCheck {
  bool ok = true;
  std::vector<std::string> problems;  // one line each, naming the symbol
  std::string report;                 // the imports and the verdict (artifact "imports")
};

// Reads the shared object with binutils (nm, readelf). CUDA programs must be compiled with
// cuda_program_flags() (the runtime as a shared library, so that its functions are imports); one linked to
// the runtime statically is refused. Throws gqa::Error when nm cannot run.
ImportCheck check_imports(const std::string& so_path, Target target);

// Whether a program of `target` may import this symbol (version suffix "@..." removed).
bool import_allowed(const std::string& symbol, Target target = Target::Cpu);

// nvcc flags the evaluator compiles CUDA programs with: -cudart shared, and an rpath to the runtime library
// of the toolkit whose nvcc compiles.
std::vector<std::string> cuda_program_flags();

}  // namespace gqa::eval
