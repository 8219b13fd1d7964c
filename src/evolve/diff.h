// Turning an LLM response into a child program: SEARCH/REPLACE blocks applied only inside the parent's
// EVOLVE-BLOCK, or a full rewrite taken from a fenced code block. A response that cannot be applied is a
// failure with a reason (which goes into the next prompt), never an exception.
#pragma once
#include <string>

namespace gqa::evolve {

struct ChildCode {
  bool ok = false;
  std::string code;
  std::string error;        // why not ok
  bool full_rewrite = false;
  int blocks = 0;           // SEARCH/REPLACE blocks applied
};

// diff_based: prefer SEARCH/REPLACE blocks (a full program is still accepted); otherwise prefer a full
// rewrite (SEARCH/REPLACE blocks are still accepted).
ChildCode apply_response(const std::string& parent, const std::string& response, bool diff_based);

}  // namespace gqa::evolve
