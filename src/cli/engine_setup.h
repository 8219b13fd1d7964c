// What several subcommands (generate, bench) do the same way: pick the device, open the engine, compile and
// load an attention program for that engine's target.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "programs/loader.h"

namespace gqa::cli {

struct OpenedEngine {
  std::unique_ptr<Engine> engine;
  bool cuda = false;
};

// The CUDA engine's flags (CudaEngineOptions): --decode-layout, --cuda-option KEY=VALUE (repeatable) and, where
// `trace` is set, --trace FILE.
struct CudaFlags {
  std::string decode_layout;
  std::vector<std::string> options;
  std::string trace;
};
void add_cuda_flags(CLI::App& app, CudaFlags& flags, bool trace);

// device: "cpu", "cuda", or "auto" (cuda when this build has it and a GPU is present). CUDA flags given for an
// engine that is not the CUDA one are an error that names them.
OpenedEngine open_engine(const std::string& model_dir, const std::string& device, const CudaFlags& cuda = {});

// Compiles (cached) and loads PROG for the engine's target; a .cpp program on the CUDA engine (or a .cu on
// the CPU) is an error naming `option` (e.g. "--attention").
ProgramHandle load_program_for(const std::string& path, bool cuda, const std::string& cuda_arch,
                               const std::string& component, const std::string& option);

// Routes the engine's attention through the program's entries from the next reset() on: its host entry for every
// attention call (or, with a device entry too, for prefill only), its device entry in the persistent decode step
// (linked now; the link cached beside the compile cache). Returns the link's time and whether it was cached.
Engine::DecodeProgramLink install_program(Engine& engine, const ProgramHandle& program, const std::string& path);

}  // namespace gqa::cli
