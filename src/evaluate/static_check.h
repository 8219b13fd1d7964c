// Static checks of a program's source before it is compiled: EVOLVE-BLOCK markers, no edits outside the
// block (against the parent), allowed includes only, and no process, file, network, allocation,
// synchronisation or exit calls. Catches the honest mistakes and the cheap cheats; the sandboxed worker
// and the correctness checks catch the rest.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "programs/compiler.h"

namespace gqa::eval {

struct StaticCheck {
  bool ok = true;
  std::vector<std::string> problems;  // "line 12: call to 'fopen' is not allowed (files)"
};

StaticCheck static_check(const std::string& source, Target target, const std::optional<std::string>& parent);

// The source with comments and string/char literals blanked (newlines kept, so line numbers hold).
std::string strip_comments_and_strings(const std::string& source);

}  // namespace gqa::eval
