// Precision probe behind the persistent decode step's GEMV (docs/engine-cuda-log.md, v7): y = W x for 16 rows of
// bf16 W and float x, by mma.sync m16n8k16 with x split into bf16 terms, against fp64 and an fp32 FMA chain.
//   nvcc -O2 -arch=sm_90a -o mma_precision dev/cuda/mma_precision.cu && ./mma_precision
// H200 (2026-11-22), relative L2 at K = 1024: two terms 2.9e-6, one term 1.8e-3, fp32 FMA 4.5e-7, three terms
// 1.2e-7; accumulating in the tensor core or starting each mma from zero made no difference.
#include <cuda_bf16.h>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
__device__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// mode 0: hi+lo, accumulate in C; 1: hi+lo, zero-start, FADD; 2: hi only; 3: fp32 FMA
__global__ void k(const __nv_bfloat16* W, const float* x, int K, int mode, float* y) {
  __shared__ __nv_bfloat16 hi[4096], lo[4096], lo2[4096];
  int lane = threadIdx.x;
  for (int i = lane; i < K; i += 32) { __nv_bfloat16 h = __float2bfloat16(x[i]); hi[i] = h; __nv_bfloat16 m = __float2bfloat16(x[i] - __bfloat162float(h)); lo[i] = m; lo2[i] = __float2bfloat16(x[i] - __bfloat162float(h) - __bfloat162float(m)); }
  __syncwarp();
  if (mode == 3) {
    if (lane < 16) { float s = 0; for (int i = 0; i < K; ++i) s = fmaf(__bfloat162float(W[lane * K + i]), x[i], s); y[lane] = s; }
    return;
  }
  int g = lane >> 2, t = lane & 3;
  float d[4] = {0, 0, 0, 0};
  const unsigned* xb = reinterpret_cast<const unsigned*>(mode == 4 ? (g == 1 ? lo : g == 2 ? lo2 : hi) : (g & 1) && mode != 2 ? lo : hi) + t;
  for (int s = 0; s < K / 16; ++s) {
    unsigned a[4];
    auto w2 = [&](int r, int c) { return *reinterpret_cast<const unsigned*>(W + r * K + s * 16 + c); };
    a[0] = w2(g, 2 * t); a[1] = w2(g + 8, 2 * t); a[2] = w2(g, 2 * t + 8); a[3] = w2(g + 8, 2 * t + 8);
    unsigned b0 = xb[s * 8], b1 = xb[s * 8 + 4];
    if ((g & 1) && mode == 2) b0 = b1 = 0;
    if (mode == 0) mma(d, a, b0, b1);
    else { float e[4] = {0, 0, 0, 0}; mma(e, a, b0, b1); for (int q = 0; q < 4; ++q) d[q] += e[q]; }
  }
  float a0 = t == 0 ? d[0] + d[1] : d[0], a1 = t == 0 ? d[2] + d[3] : d[2]; if (mode == 4) { a0 += __shfl_down_sync(~0u, a0, 1); a1 += __shfl_down_sync(~0u, a1, 1); }
  if (t == 0) { y[g] = a0; y[g + 8] = a1; }
}
int main() {
  for (int K : {64, 1024, 3072}) {
    std::vector<__nv_bfloat16> W(16 * K); std::vector<float> x(K);
    srand(K);
    for (auto& w : W) w = __float2bfloat16((rand() / (float)RAND_MAX - 0.5f) * 0.1f);
    for (auto& v : x) v = (rand() / (float)RAND_MAX - 0.5f) * 4.f;
    __nv_bfloat16* dW; float *dx, *dy; cudaMalloc(&dW, W.size() * 2); cudaMalloc(&dx, K * 4); cudaMalloc(&dy, 64);
    cudaMemcpy(dW, W.data(), W.size() * 2, cudaMemcpyHostToDevice); cudaMemcpy(dx, x.data(), K * 4, cudaMemcpyHostToDevice);
    const char* names[] = {"mma hi+lo acc", "mma hi+lo zero-start", "mma hi only", "fp32 fma", "mma 3 terms zero-start"};
    for (int mode = 0; mode < 5; ++mode) {
      k<<<1, 32>>>(dW, dx, K, mode, dy); float y[16]; cudaMemcpy(y, dy, 64, cudaMemcpyDeviceToHost);
      double worst = 0, num = 0, den = 0;
      for (int r = 0; r < 16; ++r) { double ref = 0, mag = 0; for (int i = 0; i < K; ++i) { double p = (double)__bfloat162float(W[r * K + i]) * x[i]; ref += p; mag += fabs(p); }
        worst = std::max(worst, fabs(y[r] - ref) / mag); num += (y[r] - ref) * (y[r] - ref); den += ref * ref; }
      printf("K %4d %-22s worst |err|/sum|p| %.2e  rel L2 %.2e\n", K, names[mode], worst, sqrt(num / den));
    }
  }
  printf("%s\n", cudaGetErrorString(cudaGetLastError()));
}
