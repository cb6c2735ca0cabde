// Launch-geometry helpers shared by the element-wise kernels of kernels.cu and kernels_layout.cu.
#pragma once
#include <algorithm>
#include <cstdint>

namespace st2v::cuda {

constexpr int kThreads = 256;

// Blocks for n elements at `threads` per block (at least 1, at most 2^20: the grid-stride loops cover the rest).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
    int64_t b = (n + threads - 1) / threads;
    return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(b, 1), 1 << 20));
}

}  // namespace st2v::cuda

#define ST2V_GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)
