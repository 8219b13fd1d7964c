// What a compiled program may call: the dynamic symbols its shared object imports, checked against an
// allow-list (libm, memcpy/memset/memmove, OpenMP's parallel runtime and thread queries), and no code that
// runs when it is loaded (constructors, IFUNC resolvers), whatever the source looked like.
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

// Reads the shared object with binutils (nm, readelf). CPU target: the allow-list above. CUDA target
// (nvcc links the CUDA runtime statically, so the runtime's own imports are in the object): not
// checked yet; the report says so. Throws gqa::Error when nm cannot run.
ImportCheck check_imports(const std::string& so_path, Target target);

// Whether a CPU program may import this symbol (version suffix "@..." removed).
bool import_allowed(const std::string& symbol);

}  // namespace gqa::eval
