// Engine and attention-program setup shared by the subcommands (see engine_setup.h).
#include "cli/engine_setup.h"

#include "common/error.h"
#include "engine/cpu/cpu_engine.h"
#include "engine/cuda/cuda_engine.h"

namespace gqa::cli {

OpenedEngine open_engine(const std::string& model_dir, const std::string& device) {
  OpenedEngine e;
  e.cuda = device == "cuda" || (device == "auto" && cuda_device_count() > 0);
  if (e.cuda)
    e.engine = open_cuda_engine(model_dir);
  else
    e.engine = CpuEngine::open(model_dir);
  return e;
}

ProgramHandle load_program_for(const std::string& path, bool cuda, const std::string& cuda_arch,
                               const std::string& component, const std::string& option) {
  CompileOptions co;
  co.target = cuda ? Target::Cuda : Target::Cpu;
  co.cuda_arch = cuda_arch;
  if (target_of_path(path) != co.target)
    fail(component, "{} {}: a {} program cannot run on the {} engine (.cpp is cpu, .cu is cuda)", option, path,
         target_name(target_of_path(path)), target_name(co.target));
  return compile_and_load(path, co);
}

}  // namespace gqa::cli
