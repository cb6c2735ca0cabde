// The CUDA backend's own kernels (fp32). The per-element formulas come from backend/kernel_math.h and
// runtime/blend_math.h, the same inline functions the CPU backend calls. Reductions accumulate in double like
// the CPU (shifted sums for the norms), so the two backends agree far below the 1e-4 parity bound.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/kernel_math.h"
#include "cuda/context.h"
#include "cuda/kernel_util.cuh"
#include "cuda/launch.h"
#include "runtime/blend_math.h"

namespace st2v::cuda {
namespace {


__global__ void silu_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
    ST2V_GRID_STRIDE(i, n) y[i] = kmath::silu(x[i]);
}
__global__ void gelu_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
    ST2V_GRID_STRIDE(i, n) y[i] = kmath::gelu_erf(x[i]);
}
__global__ void geglu_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t rows, int64_t C) {
    ST2V_GRID_STRIDE(i, rows * C) {
        const int64_t r = i / C, c = i % C;
        y[i] = kmath::geglu(x[r * 2 * C + c], x[r * 2 * C + C + c]);
    }
}
__global__ void axpby_kernel(const float* x, float a, const float* y2, float b, float* out, int64_t n) {
    ST2V_GRID_STRIDE(i, n) out[i] = a * x[i] + b * y2[i];
}
// C[m, n] = act(C[m, n] + bias[n]) on a row-major matrix with leading dimension ldc.
__global__ void bias_act_kernel(float* c, int64_t ldc, int64_t M, int64_t N, const float* bias, int act) {
    ST2V_GRID_STRIDE(i, M * N) {
        const int64_t m = i / N, n = i % N;
        float v = c[m * ldc + n];
        if (bias) v += bias[n];
        if (act == ST2V_ACT_SILU) v = kmath::silu(v);
        else if (act == ST2V_ACT_GELU) v = kmath::gelu_erf(v);
        c[m * ldc + n] = v;
    }
}

// Block-wide sum of two doubles (blockDim.x a multiple of 32, <= 1024).
__device__ void block_sum2(double& a, double& b) {
    __shared__ double sa[32], sb[32];
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, o);
        b += __shfl_xor_sync(0xffffffffu, b, o);
    }
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();  // sa/sb may still be read by a previous call
    if (lane == 0) { sa[w] = a; sb[w] = b; }
    __syncthreads();
    a = lane < nw ? sa[lane] : 0.0;
    b = lane < nw ? sb[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, o);
        b += __shfl_xor_sync(0xffffffffu, b, o);
    }
}

// GroupNorm in two kernels so that a few large groups still fill the GPU. x [B*frames, C, S]; group (b, g) is
// R = frames * cpg rows of S contiguous elements, row r = (f, cc) = (r / cpg, r % cpg) at
// ((b*frames + f)*C + g*cpg + cc)*S. Each group is cut into P slices of whole rows (grid (B*groups, P)):
//   stats: slice p's shifted sums (shift: the group's first element), in double as the CPU op -> part[group*P + p]
//   apply: every block of the group adds up the P partial sums (same order in each), then normalises its slice
// Per-element index arithmetic is one add; divisions happen once per row.
// This block's group (blockIdx.x) and slice (blockIdx.y) of the grid (B*groups, P).
struct GnSlice {
    int64_t grp, b, g, cpg, R, r0, r1, first;  // first: offset of the group's first element (the shift)
    __device__ GnSlice(int64_t C, int64_t S, int frames, int groups, int P)
        : grp(blockIdx.x), b(grp / groups), g(grp % groups), cpg(C / groups), R(frames * cpg),
          r0(R * blockIdx.y / P), r1(R * (blockIdx.y + 1) / P), first((b * frames * C + g * cpg) * S) {}
    // element offset of row r = (frame r / cpg, channel g*cpg + r % cpg)
    __device__ int64_t row(int64_t r, int64_t C, int64_t S, int frames) const {
        return ((b * frames + r / cpg) * C + g * cpg + r % cpg) * S;
    }
};
__global__ void group_norm_stats_kernel(const float* __restrict__ x, double2* __restrict__ part, int64_t C, int64_t S,
                                        int frames, int groups, int P) {
    const GnSlice sl(C, S, frames, groups, P);
    const float shift = x[sl.first];
    double s1 = 0, s2 = 0;
    for (int64_t r = sl.r0; r < sl.r1; ++r) {
        const float* row = x + sl.row(r, C, S, frames);
        for (int64_t k = threadIdx.x; k < S; k += blockDim.x) {
            const double d = static_cast<double>(row[k]) - shift;
            s1 += d;
            s2 += d * d;
        }
    }
    block_sum2(s1, s2);
    if (threadIdx.x == 0) {
        double2 v;
        v.x = s1;
        v.y = s2;
        part[sl.grp * P + blockIdx.y] = v;
    }
}
__global__ void group_norm_apply_kernel(const float* __restrict__ x, float* __restrict__ y,
                                        const double2* __restrict__ part, int64_t C, int64_t S, int frames, int groups,
                                        int P, const float* __restrict__ gamma, const float* __restrict__ beta, float eps,
                                        int silu) {
    const GnSlice sl(C, S, frames, groups, P);
    double s1 = 0, s2 = 0;
    for (int q = 0; q < P; ++q) {  // the same order in every block of the group: the same mean and rstd
        const double2 v = part[sl.grp * P + q];
        s1 += v.x;
        s2 += v.y;
    }
    const float shift = x[sl.first];
    const double n = static_cast<double>(sl.R * S);
    const double dm = s1 / n;
    double var = s2 / n - dm * dm;
    if (var < 0) var = 0;
    const float rstd = static_cast<float>(1.0 / sqrt(var + eps));
    const float mean = static_cast<float>(shift + dm);
    for (int64_t r = sl.r0; r < sl.r1; ++r) {
        const int64_t c = sl.g * sl.cpg + r % sl.cpg, off = sl.row(r, C, S, frames);
        const float sc = rstd * (gamma ? gamma[c] : 1.0f);
        const float sh = beta ? beta[c] : 0.0f;
        for (int64_t k = threadIdx.x; k < S; k += blockDim.x) y[off + k] = kmath::norm_affine(x[off + k], mean, sc, sh, silu != 0);
    }
}

// One block per row; two-pass mean/variance in double (as the CPU's ln_row).
__global__ void layer_norm_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t C,
                                  const float* __restrict__ gamma, const float* __restrict__ beta, float eps) {
    const float* xr = x + blockIdx.x * C;
    float* yr = y + blockIdx.x * C;
    double s = 0, unused = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += xr[c];
    block_sum2(s, unused);
    const double mean = s / static_cast<double>(C);
    double sq = 0;
    unused = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        const double d = xr[c] - mean;
        sq += d * d;
    }
    block_sum2(sq, unused);
    const float rstd = static_cast<float>(1.0 / sqrt(sq / static_cast<double>(C) + eps));
    const float m = static_cast<float>(mean);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float v = (xr[c] - m) * rstd;
        if (gamma) v *= gamma[c];
        if (beta) v += beta[c];
        yr[c] = v;
    }
}

__global__ void timestep_kernel(const float* t, int64_t n, const float* freq, int half, int flip, float* out) {
    const int dim = 2 * half;
    ST2V_GRID_STRIDE(i, n * dim) {
        const int64_t r = i / dim;
        out[i] = kmath::timestep_emb(t[r], freq, half, static_cast<int>(i % dim), flip != 0);
    }
}

__global__ void cfg_kernel(const float* u, const float* c, float scale, float* out, int64_t n) {
    ST2V_GRID_STRIDE(i, n) out[i] = kmath::cfg(u[i], c[i], scale);
}

__global__ void ddim_kernel(const float* x, const float* eps, const float* noise, kmath::DdimCoefs k, float* out,
                            int64_t n) {
    const bool noisy = noise != nullptr;
    ST2V_GRID_STRIDE(i, n) out[i] = kmath::ddim_update(x[i], eps[i], noisy ? noise[i] : 0.0f, k, noisy);
}

__global__ void dpm_kernel(const float* x, const float* eps, const float* prev_x0, float sigma, float alpha,
                           float coef_x, float coef_d, float inv_r0, float* x0_out, float* out, int64_t n) {
    ST2V_GRID_STRIDE(i, n) {
        const float d0 = kmath::dpm_x0(x[i], eps[i], sigma, alpha);
        const float xi = x[i];
        x0_out[i] = d0;
        out[i] = prev_x0 ? kmath::dpm_second_order(xi, d0, prev_x0[i], coef_x, coef_d, inv_r0)
                         : kmath::dpm_first_order(xi, d0, coef_x, coef_d);
    }
}

// Each output element is written once, from its owner chunk (blend_math.h). tables: n_chunks chunk pointers,
// then n_chunks split indices.
__global__ void blend_kernel(const float* const* chunks, const int64_t* r, int64_t n_chunks, int64_t B, int64_t Ch,
                             int64_t L, int64_t HW, int64_t chunk, int64_t overlap, float* out) {
    ST2V_GRID_STRIDE(i, B * Ch * L * HW) {
        int64_t k = -1;
        const int64_t src = runtime::blend_math::source_index(i, B, Ch, L, HW, n_chunks, chunk, overlap, r, &k);
        out[i] = k < 0 ? 0.0f : chunks[k][src];
    }
}

// ---- attention: online softmax (flash-attention style), fp32 accumulate ----
// A block of kWarps warps handles kWarps query rows of one (batch, head); each lane owns DPL output columns
// (lane + 32*i). Keys/values stream through shared memory in tiles of 32; lane j scores key j of the tile.
constexpr int kWarps = 8;
template <int DPL>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(st2v_attention_args a) {
    constexpr int KT = 32;
    const int Dm = DPL * 32;  // padded head width
    ST2V_DYNAMIC_SMEM(float, smem);
    float* ks = smem;                        // [KT][Dm + 1]
    float* vs = ks + KT * (Dm + 1);          // [KT][Dm]
    float* qs = vs + KT * Dm;                // [kWarps][Dm]
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int h = blockIdx.y;
    const int64_t b = blockIdx.z;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + w;
    const bool active = row < a.Lq;
    const int D = a.D, Dv = a.Dv;
    float* q = qs + w * Dm;
    for (int d = lane; d < Dm; d += 32)
        q[d] = (active && d < D) ? a.d_q[b * a.q_bs + row * a.q_rs + static_cast<int64_t>(h) * D + d] * a.scale : 0.f;
    float o[DPL];
#pragma unroll
    for (int i = 0; i < DPL; ++i) o[i] = 0.f;
    float m = -INFINITY, l = 0.f;
    for (int64_t k0 = 0; k0 < a.Lk; k0 += KT) {
        __syncthreads();  // previous tile consumed
        for (int idx = threadIdx.x; idx < KT * Dm; idx += blockDim.x) {
            const int j = idx / Dm, d = idx % Dm;
            const int64_t key = k0 + j;
            const bool in = key < a.Lk;
            ks[j * (Dm + 1) + d] =
                (in && d < D) ? a.d_k[b * a.k_bs + key * a.k_rs + static_cast<int64_t>(h) * D + d] : 0.f;
            vs[j * Dm + d] = (in && d < Dv) ? a.d_v[b * a.v_bs + key * a.v_rs + static_cast<int64_t>(h) * Dv + d] : 0.f;
        }
        __syncthreads();
        if (!active) continue;
        float s = -INFINITY;
        if (k0 + lane < a.Lk) {
            s = 0.f;
            const float* kr = ks + lane * (Dm + 1);
            for (int d = 0; d < D; ++d) s += q[d] * kr[d];
        }
        float tmax = s;
        for (int off = 16; off > 0; off >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, off));
        const float m_new = fmaxf(m, tmax);  // finite: the tile holds at least one key
        const float p = (k0 + lane < a.Lk) ? expf(s - m_new) : 0.f;
        float psum = p;
        for (int off = 16; off > 0; off >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, off);
        const float corr = expf(m - m_new);  // 0 on the first tile (m = -inf)
        l = l * corr + psum;
        m = m_new;
#pragma unroll
        for (int i = 0; i < DPL; ++i) o[i] *= corr;
        for (int j = 0; j < KT; ++j) {
            const float pj = __shfl_sync(0xffffffffu, p, j);
            const float* vr = vs + j * Dm;
#pragma unroll
            for (int i = 0; i < DPL; ++i) o[i] += pj * vr[lane + 32 * i];
        }
    }
    if (!active) return;
    const float inv = 1.f / l;
    float* orow = a.d_o + (b * a.Lq + row) * static_cast<int64_t>(a.H) * Dv + static_cast<int64_t>(h) * Dv;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
        const int d = lane + 32 * i;
        if (d < Dv) orow[d] = o[i] * inv;
    }
}

// Row softmax in place: s [rows, n] fp32, one block per row (grid-stride over rows). Three passes over the row
// (max; exp(x - max) written back and summed; scaled by 1 / sum), the row staying in L1/L2 between them.
__device__ float block_reduce_f(float v, bool is_max) {
    __shared__ float sh[32];
    for (int o = 16; o > 0; o >>= 1) {
        const float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();  // sh may still be read by a previous call
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (is_max ? -INFINITY : 0.f);
    for (int o = 16; o > 0; o >>= 1) {
        const float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    return v;
}
// Exact row softmax of the scores s [rows, n] (fp32): the exponentials are stored back into s, the probabilities
// written to p in T: p == s (fp32, in place), or a bf16 buffer (the P operand of the bf16 attention path's second GEMM).
__device__ __forceinline__ void store_prob(float* p, int64_t j, float v) { p[j] = v; }
__device__ __forceinline__ void store_prob(__nv_bfloat16* p, int64_t j, float v) { p[j] = __float2bfloat16_rn(v); }
template <typename T>
__global__ void softmax_rows_kernel(float* s, T* p, int64_t rows, int64_t n) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float* row = s + r * n;
        T* out = p + r * n;
        float m = -INFINITY;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, row[j]);
        m = block_reduce_f(m, true);
        float sum = 0.f;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            const float e = expf(row[j] - m);
            row[j] = e;
            sum += e;
        }
        const float inv = 1.f / block_reduce_f(sum, false);
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) store_prob(out, j, row[j] * inv);
    }
}
// dst [B * L, cols] contiguous bf16 = src's rows (row r = b * L + l at b * bs + l * rs, fp32), columns [0, cols).
__global__ void rows_to_bf16_kernel(const float* __restrict__ src, int64_t L, int64_t rs, int64_t bs, int64_t cols,
                                    __nv_bfloat16* __restrict__ dst, int64_t n) {
    ST2V_GRID_STRIDE(i, n) {
        const int64_t r = i / cols, c = i - r * cols, b = r / L, l = r - b * L;
        dst[i] = __float2bfloat16_rn(src[b * bs + l * rs + c]);
    }
}

__device__ __forceinline__ float load_as_f32(const void* p, int t, int64_t i) {
    if (t == ST2V_BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    if (t == ST2V_F16) return __half2float(static_cast<const __half*>(p)[i]);
    return static_cast<const float*>(p)[i];
}
__global__ void cast_kernel(const void* src, int st, void* dst, int dt, int64_t n) {
    ST2V_GRID_STRIDE(i, n) {
        const float v = load_as_f32(src, st, i);
        if (dt == ST2V_BF16) static_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(v);
        else if (dt == ST2V_F16) static_cast<__half*>(dst)[i] = __float2half_rn(v);
        else static_cast<float*>(dst)[i] = v;
    }
}

template <int DPL>
st2v_status launch_attention(const st2v_attention_args* a) {
    constexpr int Dm = DPL * 32;
    const size_t smem = sizeof(float) * (32 * (Dm + 1) + 32 * Dm + kWarps * Dm);
    ST2V_CU(cudaFuncSetAttribute(attention_kernel<DPL>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem)));
    dim3 grid(static_cast<unsigned>((a->Lq + kWarps - 1) / kWarps), static_cast<unsigned>(a->H),
              static_cast<unsigned>(a->B));
    ST2V_LAUNCH(attention_kernel<DPL>, grid, kWarps * 32, smem, ctx().stream, *a);
    ST2V_CU_LAUNCHED("attention_kernel");
    return ST2V_OK;
}

}  // namespace

st2v_status k_silu(const float* x, float* y, int64_t n) {
    if (n == 0) return ST2V_OK;
    ST2V_LAUNCH(silu_kernel, grid_for(n), kThreads, 0, ctx().stream, x, y, n);
    ST2V_CU_LAUNCHED("silu_kernel");
    return ST2V_OK;
}
st2v_status k_gelu(const float* x, float* y, int64_t n) {
    if (n == 0) return ST2V_OK;
    ST2V_LAUNCH(gelu_kernel, grid_for(n), kThreads, 0, ctx().stream, x, y, n);
    ST2V_CU_LAUNCHED("gelu_kernel");
    return ST2V_OK;
}
st2v_status k_geglu(const float* x, float* y, int64_t rows, int64_t C) {
    if (rows * C == 0) return ST2V_OK;
    ST2V_LAUNCH(geglu_kernel, grid_for(rows * C), kThreads, 0, ctx().stream, x, y, rows, C);
    ST2V_CU_LAUNCHED("geglu_kernel");
    return ST2V_OK;
}
st2v_status k_axpby(const float* x, float a, const float* y2, float b, float* out, int64_t n) {
    if (n == 0) return ST2V_OK;
    ST2V_LAUNCH(axpby_kernel, grid_for(n), kThreads, 0, ctx().stream, x, a, y2, b, out, n);
    ST2V_CU_LAUNCHED("axpby_kernel");
    return ST2V_OK;
}
st2v_status k_bias_act(float* c, int64_t ldc, int64_t M, int64_t N, const float* bias, int act) {
    if (M * N == 0) return ST2V_OK;
    ST2V_LAUNCH(bias_act_kernel, grid_for(M * N), kThreads, 0, ctx().stream, c, ldc, M, N, bias, act);
    ST2V_CU_LAUNCHED("bias_act_kernel");
    return ST2V_OK;
}
st2v_status k_group_norm(const float* x, float* y, int64_t NF, int64_t C, int64_t S, int frames, int groups,
                         const float* gamma, const float* beta, float eps, int silu) {
    if (groups < 1 || frames < 1 || C % groups != 0 || NF % frames != 0)
        return fail(ST2V_E_INVALID_ARG, "group_norm: %lld channels / %d groups, batch %lld / %d frames do not divide",
                    (long long)C, groups, (long long)NF, frames);
    const int64_t blocks = NF / frames * groups;
    if (blocks == 0 || S == 0) return ST2V_OK;
    if (blocks > 0x7fffffff) return fail(ST2V_E_UNSUPPORTED, "group_norm: %lld groups in one call", (long long)blocks);
    // Slices per group: about 512 blocks in all (a few waves on a large GPU), at most one per row, at most 64.
    const int64_t rows = static_cast<int64_t>(frames) * (C / groups);
    const int P = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({(512 + blocks - 1) / blocks, rows, 64})));
    // Threads per block: whole warps up to S (small maps leave fewer threads idle), at most 256.
    const int threads = static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, (S + 31) / 32 * 32)));
    void* part = nullptr;
    if (st2v_status st = scratch(static_cast<size_t>(blocks * P) * sizeof(double2), &part)) return st;
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(P));
    ST2V_LAUNCH(group_norm_stats_kernel, grid, threads, 0, ctx().stream, x, static_cast<double2*>(part), C, S, frames,
                groups, P);
    ST2V_CU_LAUNCHED("group_norm_stats_kernel");
    ST2V_LAUNCH(group_norm_apply_kernel, grid, threads, 0, ctx().stream, x, y, static_cast<const double2*>(part), C, S,
                frames, groups, P, gamma, beta, eps, silu);
    ST2V_CU_LAUNCHED("group_norm_apply_kernel");
    return ST2V_OK;
}
st2v_status k_layer_norm(const float* x, float* y, int64_t rows, int64_t C, const float* gamma, const float* beta,
                         float eps) {
    if (rows == 0 || C == 0) return ST2V_OK;
    if (rows > 0x7fffffff) return fail(ST2V_E_UNSUPPORTED, "layer_norm: %lld rows in one call", (long long)rows);
    const int threads = C >= 1024 ? 256 : 128;
    ST2V_LAUNCH(layer_norm_kernel, static_cast<unsigned>(rows), threads, 0, ctx().stream, x, y, C, gamma, beta, eps);
    ST2V_CU_LAUNCHED("layer_norm_kernel");
    return ST2V_OK;
}
st2v_status k_timestep_embedding(const float* t, int64_t n, const float* freq, int half, int flip, float* out) {
    if (n == 0 || half == 0) return ST2V_OK;
    ST2V_LAUNCH(timestep_kernel, grid_for(n * 2 * half), kThreads, 0, ctx().stream, t, n, freq, half, flip, out);
    ST2V_CU_LAUNCHED("timestep_kernel");
    return ST2V_OK;
}
st2v_status k_cfg_combine(const float* u, const float* c, float scale, float* out, int64_t n) {
    if (n == 0) return ST2V_OK;
    ST2V_LAUNCH(cfg_kernel, grid_for(n), kThreads, 0, ctx().stream, u, c, scale, out, n);
    ST2V_CU_LAUNCHED("cfg_kernel");
    return ST2V_OK;
}
st2v_status k_ddim_step(const float* x, const float* eps, const float* noise, const float* coefs5, float* out,
                        int64_t n) {
    kmath::DdimCoefs k;
    k.sqrt_beta_t = coefs5[0];
    k.sqrt_a_t = coefs5[1];
    k.sqrt_a_prev = coefs5[2];
    k.dir_coef = coefs5[3];
    k.std_dev = coefs5[4];
    if (k.std_dev != 0.0f && !noise) return fail(ST2V_E_INVALID_ARG, "ddim_step: std_dev > 0 needs variance noise");
    if (n == 0) return ST2V_OK;
    ST2V_LAUNCH(ddim_kernel, grid_for(n), kThreads, 0, ctx().stream, x, eps, k.std_dev != 0.0f ? noise : nullptr, k,
                out, n);
    ST2V_CU_LAUNCHED("ddim_kernel");
    return ST2V_OK;
}
st2v_status k_dpmpp_2m_step(const float* x, const float* eps, const float* prev_x0, const float* c, float* x0,
                            float* out, int64_t n) {
    if (n == 0) return ST2V_OK;
    ST2V_LAUNCH(dpm_kernel, grid_for(n), kThreads, 0, ctx().stream, x, eps, prev_x0, c[0], c[1], c[2], c[3], c[4], x0,
                out, n);
    ST2V_CU_LAUNCHED("dpm_kernel");
    return ST2V_OK;
}
st2v_status k_blend_merge(const float* const* chunk_ptrs, int64_t n_chunks, int64_t B, int64_t Ch, int64_t L,
                          int64_t HW, int64_t chunk, int64_t overlap, const int64_t* r, float* out) {
    if (n_chunks < 1 || chunk < 1 || overlap < 0 || overlap >= chunk)
        return fail(ST2V_E_INVALID_ARG, "blend_merge: %lld chunks of %lld frames with overlap %lld", (long long)n_chunks,
                    (long long)chunk, (long long)overlap);
    const int64_t total = B * Ch * L * HW;
    if (total == 0) return ST2V_OK;
    const size_t bytes = static_cast<size_t>(n_chunks) * (sizeof(void*) + sizeof(int64_t));
    void* tab = nullptr;
    if (st2v_status s = scratch(bytes, &tab)) return s;
    // Host tables -> scratch (pageable source: the copy is staged before the call returns).
    ST2V_CU(cudaMemcpyAsync(tab, chunk_ptrs, n_chunks * sizeof(void*), cudaMemcpyHostToDevice, ctx().stream));
    int64_t* rd = reinterpret_cast<int64_t*>(static_cast<char*>(tab) + n_chunks * sizeof(void*));
    ST2V_CU(cudaMemcpyAsync(rd, r, n_chunks * sizeof(int64_t), cudaMemcpyHostToDevice, ctx().stream));
    ST2V_LAUNCH(blend_kernel, grid_for(total), kThreads, 0, ctx().stream, static_cast<const float* const*>(tab), rd,
                n_chunks, B, Ch, L, HW, chunk, overlap, out);
    ST2V_CU_LAUNCHED("blend_kernel");
    return ST2V_OK;
}
st2v_status k_cast(const void* src, int st, void* dst, int dt, int64_t n) {
    auto ok = [](int t) { return t == ST2V_F32 || t == ST2V_F16 || t == ST2V_BF16; };
    if (!ok(st) || !ok(dt)) return fail(ST2V_E_INVALID_ARG, "cast: unknown dtype %d -> %d", st, dt);
    if (n == 0) return ST2V_OK;
    ST2V_LAUNCH(cast_kernel, grid_for(n), kThreads, 0, ctx().stream, src, st, dst, dt, n);
    ST2V_CU_LAUNCHED("cast_kernel");
    return ST2V_OK;
}

// ---- attention as GEMMs: S = scale Q_h K_h^T (cuBLASLt, fp32, strided batches over the samples), an exact row
// softmax in place, O_h = S V_h (cuBLASLt, written into head h's columns of O). The scores of at most
// kAttnScoreBytes are materialised at a time: a group of samples of one head, or a band of query rows of one
// (sample, head) when a single score matrix is larger (rows are independent, so the bands are exact).
// ST2V_CUDA_ATTN_BF16=1 (opt-in, read at every call; for runs with bf16 weights, whose bound it is meant to stay in:
// it changes fp32 results): Q, K, V rounded to bf16 once per call (compact copies), both GEMMs on bf16 operands with
// fp32 accumulation and fp32 scores, the softmax in fp32 writing bf16 probabilities for the second GEMM. ----
namespace {
constexpr int64_t kAttnScoreBytes = int64_t(256) << 20;

// kGemm: forced by the environment; kGemmChosen: picked by the default rule (may fall back to the fused kernel).
enum class AttnPath { kFused, kGemm, kGemmChosen };
// ST2V_CUDA_ATTN (read at every call, so a test can switch it): "fused" the online-softmax kernel, "gemm" the GEMM
// path; anything else (default) picks per call: GEMM when a head is wider than the fused kernel takes (> 256) or
// both sequences are long (Lq, Lk >= 256: the UNet's spatial self-attention), else the fused kernel (cross
// attention over 77 tokens, temporal attention over 16 frames, short sequences).
AttnPath attention_path(const st2v_attention_args* a) {
    const char* e = std::getenv("ST2V_CUDA_ATTN");
    if (e && std::strcmp(e, "fused") == 0) return AttnPath::kFused;
    if (e && std::strcmp(e, "gemm") == 0) return AttnPath::kGemm;
    if (std::max(a->D, a->Dv) > 256) return AttnPath::kGemmChosen;
    return a->Lq >= 256 && a->Lk >= 256 ? AttnPath::kGemmChosen : AttnPath::kFused;
}
int64_t attention_score_budget() {  // ST2V_CUDA_ATTN_SCORE_BYTES overrides (tests use a small one to force bands)
    const char* e = std::getenv("ST2V_CUDA_ATTN_SCORE_BYTES");
    if (e && *e) {
        const long long v = std::atoll(e);
        if (v >= 4) return v;
    }
    return kAttnScoreBytes;
}

// ST2V_CUDA_ATTN_BF16 (read at every call): the GEMM path on bf16 operands.
bool attention_bf16() {
    const char* e = std::getenv("ST2V_CUDA_ATTN_BF16");
    return e && (std::strcmp(e, "1") == 0 || std::strcmp(e, "on") == 0);
}
// A device scratch buffer of the GEMM path (scores, bf16 probabilities, bf16 operand copies): stream-ordered when the
// context allocates that way, else cudaMalloc and a synchronised free.
struct AttnScratch {
    void* p = nullptr;
    st2v_status alloc(size_t bytes) {
        cudaError_t e = ctx().async_alloc ? cudaMallocAsync(&p, bytes, ctx().stream) : cudaMalloc(&p, bytes);
        if (e != cudaSuccess) {
            p = nullptr;
            return from_cuda(e, "attention: scratch buffer");
        }
        return ST2V_OK;
    }
    float* f() const { return static_cast<float*>(p); }
    __nv_bfloat16* h() const { return static_cast<__nv_bfloat16*>(p); }
    ~AttnScratch() {
        if (!p) return;
        if (ctx().async_alloc) {
            cudaFreeAsync(p, ctx().stream);
        } else {
            cudaStreamSynchronize(ctx().stream);
            cudaFree(p);
        }
    }
};

// A bf16 copy of a strided fp32 operand [B, L, cols]: compact, so row stride cols and batch stride L * cols.
st2v_status to_bf16(const float* src, int64_t B, int64_t L, int64_t rs, int64_t bs, int64_t cols, AttnScratch* dst) {
    const int64_t n = B * L * cols;
    if (st2v_status st = dst->alloc(sizeof(__nv_bfloat16) * static_cast<size_t>(n))) return st;
    ST2V_LAUNCH(rows_to_bf16_kernel, grid_for(n), kThreads, 0, ctx().stream, src, L, rs, bs, cols, dst->h(), n);
    ST2V_CU_LAUNCHED("rows_to_bf16_kernel");
    return ST2V_OK;
}

st2v_status attention_gemm(const st2v_attention_args* a) {
    const int64_t B = a->B, Lq = a->Lq, Lk = a->Lk, H = a->H, D = a->D, Dv = a->Dv;
    const int64_t budget = std::max<int64_t>(attention_score_budget() / 4, Lk);  // floats; at least one row
    const int64_t qb = std::min(Lq, budget / Lk);                                 // query rows per band
    const int64_t G = qb == Lq ? std::max<int64_t>(1, std::min(B, budget / (Lq * Lk))) : 1;  // samples per group
    AttnScratch sbuf, pbuf, q16, k16, v16;
    if (st2v_status st = sbuf.alloc(sizeof(float) * static_cast<size_t>(G * qb * Lk))) return st;
    // The operands as the GEMMs read them: fp32 in place, or compact bf16 copies (ST2V_CUDA_ATTN_BF16).
    const bool lowp = attention_bf16();
    const int ab = lowp ? ST2V_BF16 : ST2V_F32;
    int64_t q_rs = a->q_rs, q_bs = a->q_bs, k_rs = a->k_rs, k_bs = a->k_bs, v_rs = a->v_rs, v_bs = a->v_bs;
    if (lowp) {
        if (st2v_status st = to_bf16(a->d_q, B, Lq, a->q_rs, a->q_bs, H * D, &q16)) return st;
        if (st2v_status st = to_bf16(a->d_k, B, Lk, a->k_rs, a->k_bs, H * D, &k16)) return st;
        if (st2v_status st = to_bf16(a->d_v, B, Lk, a->v_rs, a->v_bs, H * Dv, &v16)) return st;
        if (st2v_status st = pbuf.alloc(sizeof(__nv_bfloat16) * static_cast<size_t>(G * qb * Lk))) return st;
        q_rs = H * D, q_bs = Lq * H * D, k_rs = H * D, k_bs = Lk * H * D, v_rs = H * Dv, v_bs = Lk * H * Dv;
    }
    // element (offset) of an operand in the dtype the GEMMs read
    auto at = [&](const float* f32, const AttnScratch& b16, int64_t off) -> const void* {
        return lowp ? static_cast<const void*>(b16.h() + off) : static_cast<const void*>(f32 + off);
    };
    const int64_t o_rs = H * Dv, o_bs = Lq * H * Dv;
    for (int64_t h = 0; h < H; ++h)
        for (int64_t b0 = 0; b0 < B; b0 += G) {
            const int g = static_cast<int>(std::min(G, B - b0));
            for (int64_t q0 = 0; q0 < Lq; q0 += qb) {
                const int64_t rows = std::min(qb, Lq - q0);
                st2v_gemm_args s{};  // S[rows, Lk] = scale * Q[q0:q0+rows, head h] K[:, head h]^T
                s.M = rows, s.N = Lk, s.K = D;
                s.d_a = at(a->d_q, q16, b0 * q_bs + q0 * q_rs + h * D), s.lda = q_rs, s.a_type = ab;
                s.d_b = at(a->d_k, k16, b0 * k_bs + h * D), s.ldb = k_rs, s.trans_b = 1, s.b_type = ab;
                s.d_c = sbuf.f(), s.ldc = Lk, s.alpha = a->scale;
                if (st2v_status st = gemm_strided_batched(&s, g, q_bs, k_bs, rows * Lk)) return st;
                const int64_t srows = g * rows;
                const unsigned grid = static_cast<unsigned>(std::min<int64_t>(srows, 1 << 20));
                if (lowp) {
                    ST2V_LAUNCH(softmax_rows_kernel<__nv_bfloat16>, grid, kThreads, 0, ctx().stream, sbuf.f(), pbuf.h(),
                                srows, Lk);
                } else {
                    ST2V_LAUNCH(softmax_rows_kernel<float>, grid, kThreads, 0, ctx().stream, sbuf.f(), sbuf.f(), srows, Lk);
                }
                ST2V_CU_LAUNCHED("softmax_rows_kernel");
                st2v_gemm_args o{};  // O[q0:q0+rows, head h] = P[rows, Lk] V[:, head h]
                o.M = rows, o.N = Dv, o.K = Lk;
                o.d_a = lowp ? static_cast<const void*>(pbuf.h()) : static_cast<const void*>(sbuf.f()), o.lda = Lk;
                o.a_type = ab;
                o.d_b = at(a->d_v, v16, b0 * v_bs + h * Dv), o.ldb = v_rs, o.b_type = ab;
                o.d_c = a->d_o + b0 * o_bs + q0 * o_rs + h * Dv, o.ldc = o_rs, o.alpha = 1.f;
                if (st2v_status st = gemm_strided_batched(&o, g, rows * Lk, v_bs, o_bs)) return st;
            }
        }
    return ST2V_OK;
}
}  // namespace

st2v_status k_attention(const st2v_attention_args* a) {
    if (a->B < 1 || a->Lq < 1 || a->Lk < 1 || a->H < 1 || a->D < 1 || a->Dv < 1)
        return fail(ST2V_E_INVALID_ARG, "attention: empty or negative sizes");
    const int Dm = std::max(a->D, a->Dv);
    const AttnPath path = attention_path(a);
    if (path != AttnPath::kFused) {
        const st2v_status st = attention_gemm(a);
        // cuBLASLt without an algorithm for these operands (ST2V_E_UNSUPPORTED, nothing launched that matters: the
        // fused kernel rewrites all of O): the fused kernel when the rule chose GEMM and the head width allows it
        if (st != ST2V_E_UNSUPPORTED || path == AttnPath::kGemm || Dm > 256) return st;
    }
    if (a->B > 65535 || a->H > 65535 || (a->Lq + kWarps - 1) / kWarps > 0x7fffffff)
        return fail(ST2V_E_UNSUPPORTED, "attention: grid too large (B %lld, H %d)", (long long)a->B, a->H);
    if (Dm <= 64) return launch_attention<2>(a);
    if (Dm <= 128) return launch_attention<4>(a);
    if (Dm <= 256) return launch_attention<8>(a);
    return fail(ST2V_E_UNSUPPORTED, "attention: head width %d > 256 (the fused kernel's limit; ST2V_CUDA_ATTN=fused)", Dm);
}

}  // namespace st2v::cuda
