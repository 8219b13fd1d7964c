// The LLM prompt for one iteration: the system message, the parent's code, metrics and artifacts (within
// a byte budget), top and diverse programs, recent attempts with why they failed, and the answer format.
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

std::string system_message(const EvolveConfig& config);
std::string user_prompt(const EvolveConfig& config, const PromptInputs& in);

}  // namespace gqa::evolve
