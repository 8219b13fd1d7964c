// Evolution across ranks of an MPI job (`mpirun -n K gqa-evolve evolve ... --workers mpi`).
// Rank 0 is the controller: it runs the ordinary run loop (src/evolve/evolution_run.cpp) with one evaluation
// worker per other rank, and is the only rank that touches the output folder and the SQLite database.
// Every other rank is an evaluator: it receives the config from rank 0, binds one GPU chosen from its
// place among the worker ranks of its host (cuda target), then evaluates candidates (in killable child
// processes, as on one machine) until rank 0 tells it to stop.
#pragma once
#include <optional>
#include <string>

#include "evolve/controller.h"

namespace gqa::evolve {

// True when this binary was built with MPI.
bool mpi_built();

// Initialises MPI, runs this rank's part and finalises MPI. Rank 0 reads `config_path` (the only rank
// that needs the config, the initial program and the output folder) and returns the run's summary; the
// other ranks return nullopt. Throws gqa::Error on rank 0 for a bad setup (fewer than 2 ranks, a bad
// config, a worker that cannot evaluate); workers are told to stop first.
std::optional<RunSummary> run_evolution_mpi(const std::string& config_path, RunOptions options);

}  // namespace gqa::evolve
