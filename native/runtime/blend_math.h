// Randomized blending (architecture.md §7): the per-element index math, shared by the CPU kernel
// (runtime/blend.cpp) and a future CUDA kernel. Plain C++ with no library calls, so it compiles for host
// and device alike; ST2V_HD marks the functions __host__ __device__ under nvcc.
//
// The official loop, for chunk k = 0..n-1 at start_k = k·(C−O), with split index r_0 = 0 and r_k drawn per
// seam:   x0[:, :, start_k + r_k : start_k + C] = chunk_k[:, :, r_k:]     (later chunks overwrite)
// is equivalent to: every output frame f is written by its *owner*, the last chunk k whose written range
// [start_k + r_k, start_k + C) contains f. The fused kernel writes each output element exactly once
// (the official writes the overlaps twice), reading the owner chunk at local frame f − start_k.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define ST2V_HD __host__ __device__
#else
#define ST2V_HD
#endif

namespace st2v::runtime::blend_math {

// Owner chunk of output frame f. r[k] is chunk k's split index (r[0] is ignored and taken as 0).
// Returns -1 when no chunk writes f (only for lengths that the chunk plan does not tile).
ST2V_HD inline int64_t owner_chunk(int64_t f, int64_t n_chunks, int64_t chunk, int64_t overlap, const int64_t* r) {
    const int64_t stride = chunk - overlap;
    // Candidates are the chunks whose [start, start + C) contains f; the last one whose written range
    // starts at or before f wins. At most ceil(C / stride) candidates.
    int64_t k_hi = f / stride;
    if (k_hi > n_chunks - 1) k_hi = n_chunks - 1;
    for (int64_t k = k_hi; k >= 0; --k) {
        const int64_t start = k * stride;
        if (f >= start + chunk) break;  // earlier chunks end even sooner
        const int64_t rk = k == 0 ? 0 : r[k];
        if (f >= start + rk) return k;
    }
    return -1;
}

// Source offset (in elements) of output element `i` of a [B, Ch, L, H, W] video, chunks being
// contiguous [B, Ch, C, H, W] tensors; *chunk_out receives the owner chunk (or -1).
ST2V_HD inline int64_t source_index(int64_t i, int64_t B, int64_t Ch, int64_t L, int64_t HW, int64_t n_chunks,
                                    int64_t chunk, int64_t overlap, const int64_t* r, int64_t* chunk_out) {
    const int64_t hw = i % HW;
    const int64_t f = (i / HW) % L;
    const int64_t bc = i / (HW * L);  // b * Ch + c
    const int64_t k = owner_chunk(f, n_chunks, chunk, overlap, r);
    *chunk_out = k;
    if (k < 0) return -1;
    const int64_t local = f - k * (chunk - overlap);
    return (bc * chunk + local) * HW + hw;
}

}  // namespace st2v::runtime::blend_math
