// How many NVIDIA GPUs this host has, as the driver's tool lists them (no CUDA runtime needed, so CPU-only
// builds can still place work on GPUs).
#pragma once

namespace gqa {

// GPUs that `nvidia-smi -L` lists; 0 without a driver (no nvidia-smi, or it fails or times out).
int count_gpus();

}  // namespace gqa
