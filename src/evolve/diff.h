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
  int whitespace_matched = 0;  // of those, blocks whose SEARCH matched only with whitespace ignored
};

// A SEARCH part that is not in the EVOLVE-BLOCK exactly but matches one run of its lines, and only one,
// when trailing whitespace and indentation are ignored, replaces those lines (counted in whitespace_matched).
// diff_based: prefer SEARCH/REPLACE blocks (a full program is still accepted); otherwise prefer a full
// rewrite (SEARCH/REPLACE blocks are still accepted).
ChildCode apply_response(const std::string& parent, const std::string& response, bool diff_based);

}  // namespace gqa::evolve
