#!/usr/bin/env bash
# Copies Debian's OpenMPI runtime (mpirun, its libraries and shared-memory/TCP plugins, PMIx) into a
# relocatable folder, for a machine that has no MPI of its own (the lent GPU machine). Plugins that need
# libraries not copied (InfiniBand, UCX, libfabric, PSM) are left out: one host needs only shared memory.
#   scripts/mpi_bundle.sh DIR          # here, after scripts/setup.sh installed libopenmpi-dev openmpi-bin
#   source DIR/env.sh                  # there: PATH, LD_LIBRARY_PATH, OPAL_PREFIX, PMIx plugin path
set -euo pipefail
DIR=${1:?usage: scripts/mpi_bundle.sh DIR}
LIB=/usr/lib/x86_64-linux-gnu
OMPI=$LIB/openmpi/lib
[[ -x /usr/bin/orterun && -f $OMPI/libmpi.so ]] || { echo "mpi_bundle: OpenMPI is not installed (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 1; }
rm -rf "$DIR"
mkdir -p "$DIR/usr/bin" "$DIR/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3" "$DIR/usr/share" "$DIR/deps" "$DIR/pmix"
cp -L /usr/bin/orterun /usr/bin/orted "$DIR/usr/bin/"
ln -s orterun "$DIR/usr/bin/mpirun"
for l in libmpi libopen-rte libopen-pal libmca_common_sm libmca_common_monitoring libmca_common_ompio; do
  cp -a "$OMPI/$l".so* "$DIR/usr/lib/x86_64-linux-gnu/openmpi/lib/"
done
cp -a /usr/share/openmpi "$DIR/usr/share/"
# Libraries that OpenMPI and the kept plugins load and that an Ubuntu image may not have.
for l in libhwloc.so.15 libevent_core-2.1.so.7 libevent_pthreads-2.1.so.7 libnuma.so.1 libpmix.so.2 libmunge.so.2; do
  cp -L "$(ldconfig -p | awk -v l=$l '$1 == l {print $NF; exit}')" "$DIR/deps/$l"
done
cp -a $LIB/pmix2/lib/pmix/. "$DIR/pmix/"
# Keep a plugin only when every library it needs is in the bundle or is a base system library.
keep='^(libmpi|libopen-|libmca_common_(sm|monitoring|ompio)|libhwloc|libevent|libnuma|libpmix|libmunge|libc\.|libm\.|libz\.|libudev|libpthread|libdl|librt|libatomic|libuuid|linux-vdso|ld-linux)'
kept=0 dropped=0
for f in "$OMPI"/openmpi3/*.so; do
  if ldd "$f" | awk '{print $1}' | sed 's|.*/||' | grep -Evq "$keep"; then dropped=$((dropped + 1)); continue; fi
  cp "$f" "$DIR/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/"
  kept=$((kept + 1))
done
cat > "$DIR/env.sh" <<'EOF'
# Sourced on the machine that runs the bundle.
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export OPAL_PREFIX=$B/usr
export PATH=$B/usr/bin:$PATH
export LD_LIBRARY_PATH=$B/usr/lib/x86_64-linux-gnu/openmpi/lib:$B/deps${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PMIX_MCA_mca_base_component_path=$B/pmix
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_pml=ob1 OMPI_MCA_osc=^ucx OMPI_MCA_mtl=^ofi,psm,psm2
EOF
echo "mpi_bundle: $DIR ($(du -sh "$DIR" | cut -f1)): $kept plugins kept, $dropped left out (they need network fabrics)"
