// Reading an attention program's text for evolution: where its EVOLVE-BLOCK lies, and the knobs annotated
// in it (`... = VALUE; // EVOLVE-KNOB values=a,b,c`) that the offline mutator may set.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace gqa::evolve {

struct BlockRange {
  size_t begin = 0, end = 0;  // byte offsets: the text after the START marker's line, up to the END marker's line
};
// Throws gqa::Error when the markers are missing, repeated or out of order.
BlockRange find_evolve_block(const std::string& code);

struct Knob {
  std::string name;                 // the identifier assigned on that line
  std::string value;                // current value text
  std::vector<std::string> values;  // allowed values, in the annotated order
  size_t value_begin = 0, value_end = 0;  // byte offsets of `value` in the code
};
// Knobs in the EVOLVE-BLOCK, in order. A value not among the allowed ones is kept (it is the current one).
std::vector<Knob> parse_knobs(const std::string& code);
// The code with knobs set to the given values (names not present are an error).
std::string set_knobs(const std::string& code, const std::map<std::string, std::string>& values);
// "NAME=VALUE NAME=VALUE" of the current settings, for logs and reports.
std::string knob_summary(const std::string& code);

}  // namespace gqa::evolve
