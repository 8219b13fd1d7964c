// Engine and attention-program setup shared by the subcommands (see engine_setup.h).
#include "cli/engine_setup.h"

#include "common/error.h"
#include "engine/cpu/cpu_engine.h"
#include "engine/cuda/cuda_engine.h"

namespace gqa::cli {

void add_cuda_flags(CLI::App& app, CudaFlags& flags, bool trace) {
  app.add_option("--decode-layout", flags.decode_layout,
                 "cuda: decode step layout, persistent (default), fused or unfused (docs/engine-cuda.md)");
  app.add_option("--cuda-option", flags.options,
                 "cuda: a tuning knob KEY=VALUE (repeatable; keys: " + cuda_option_keys() + ")");
  if (trace)
    app.add_option("--trace", flags.trace,
                   "cuda: write the persistent decode step's per-block phase times of the last step to FILE (CSV)");
}

OpenedEngine open_engine(const std::string& model_dir, const std::string& device, const CudaFlags& cuda) {
  OpenedEngine e;
  e.cuda = device == "cuda" || (device == "auto" && cuda_device_count() > 0);
  if (e.cuda) {
    CudaEngineOptions o;
    if (!cuda.decode_layout.empty()) o.decode = parse_decode_layout(cuda.decode_layout);
    for (const std::string& kv : cuda.options) set_cuda_option(o, kv);
    o.trace_file = cuda.trace;
    e.engine = open_cuda_engine(model_dir, o);
  } else {
    if (!cuda.decode_layout.empty() || !cuda.options.empty() || !cuda.trace.empty())
      fail("cli", "--decode-layout, --cuda-option and --trace apply to the CUDA engine only, and this run uses the "
           "CPU engine (--device {})", device);
    e.engine = CpuEngine::open(model_dir);
  }
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

Engine::DecodeProgramLink install_program(Engine& engine, const ProgramHandle& program, const std::string& path) {
  if (program.program) engine.set_attention_program(program.program->entry());
  if (program.lto.empty()) return {};
  return engine.set_decode_attention_program(program.lto, path, default_cache_dir());
}

}  // namespace gqa::cli
