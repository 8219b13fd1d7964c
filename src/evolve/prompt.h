// The LLM prompt for one iteration: the system message (the task, the ABI contract of include/gqa/abi.h and
// the evaluator's rules), the parent's code, metrics and artifacts (within a byte budget), top and diverse
// programs, recent attempts with why they failed, and the answer format. Both messages are templates
// (prompt_template.h): the built-in ones, or the files named by prompt.system_template / user_template.
#pragma once
#include <string>
#include <vector>

#include "evolve/config.h"
#include "evolve/database.h"

namespace gqa::evolve {

struct PromptInputs {
  const Program* parent = nullptr;
  std::vector<const Program*> top, diverse;
  std::vector<Attempt> history;  // recent attempts, oldest first
  Target target = Target::Cpu;
};

std::string system_message(const EvolveConfig& config, const PromptInputs& in);
std::string user_prompt(const EvolveConfig& config, const PromptInputs& in);

// The built-in templates (what a user's template files replace).
const std::string& default_system_template();
const std::string& default_user_template();
// What the evaluator checks, as the prompt states it.
// device_entry: the rules of a device entry (gqa/decode_abi.cuh) instead of the host entry's.
std::string evaluator_rules(Target target, bool device_entry = false);

}  // namespace gqa::evolve
