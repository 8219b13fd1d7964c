// Built when CMake found no MPI: `--workers mpi` is a clear error rather than a missing option.
#include "common/error.h"
#include "evolve/mpi_run.h"

namespace gqa::evolve {

bool mpi_built() { return false; }

std::optional<RunSummary> run_evolution_mpi(const std::string&, RunOptions) {
  fail("evolve", "--workers mpi: this gqa-evolve was built without MPI; install OpenMPI (Debian: libopenmpi-dev "
       "openmpi-bin, as scripts/setup.sh does) and rebuild");
}

}  // namespace gqa::evolve
