// The CUDA backend's convolutions and data-movement kernels (ABI 2): conv2d and the (kt,1,1) temporal conv as
// one tiled implicit-GEMM kernel, a strided copy (permute / slice / concat / repeat_interleave), the broadcast
// add and the nearest resize. fp32 activations; conv weights f32 / f16 / bf16, widened to fp32 when loaded into
// shared memory, fp32 accumulation, fused bias.
//
// The convolution is the correctness path: a plain shared-memory tiled GEMM (64 output channels x 64 output
// pixels per block, 4x4 outputs per thread, K in slices of 16) that gathers the im2col operand on the fly. It
// does not use tensor cores. The planned fast path is cuDNN's fused convolution or a cuBLASLt / tensor-core
// implicit GEMM on bf16 operands; this kernel stays as the fp32 reference and the fallback.
//
// Launches go only through ST2V_LAUNCH / ST2V_DYNAMIC_SMEM (cuda/launch.h) so the file also compiles against
// the CPU emulation of CUDA (ST2V_CUDA_EMU) that runs cuda_check without a GPU.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/kernels_layout.h"
#include "cuda/kernel_util.cuh"
#include "cuda/launch.h"

namespace st2v::cuda {
namespace {


bool valid_type(int t) { return t == ST2V_F32 || t == ST2V_F16 || t == ST2V_BF16; }

__device__ __forceinline__ float load_w(const void* p, int t, int64_t i) {
    if (t == ST2V_BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    if (t == ST2V_F16) return __half2float(static_cast<const __half*>(p)[i]);
    return static_cast<const float*>(p)[i];
}

// ---- implicit GEMM: y[n, o, pix] = bias[o] + sum_k w[o, k] * G(k, p), p = n * P + pix ----
constexpr int kBM = 64;   // output channels per block
constexpr int kBN = 64;   // output pixels per block (over all images: small frames still fill a block)
constexpr int kBK = 16;   // reduction slice
constexpr int kConvThreads = 256;  // 16 x 16 threads, each 4 channels x 4 pixels (pixels strided by 16)

// A gather G supplies the implicit-GEMM operand B[k, p]: pixel(p) decodes the output pixel p once per thread and
// block (the divisions by the image and row sizes stay out of the K loop); load(q, k) reads B[k, p] (zero in the
// padding). K fits in int (checked by the launcher).

// 2-D convolution: k = (c * kh + i) * kw + j, p = (n * Ho + oh) * Wo + ow.
struct Conv2dGather {
    const float* x;
    int64_t C, H, W, Wo, P;
    int kw, khw, stride, pad_top, pad_left;
    struct Pix {
        const float* xn;  // image n
        int64_t ih0, iw0;
        bool ok;
    };
    __device__ __forceinline__ Pix pixel(int64_t p, bool in) const {
        Pix q{x, 0, 0, in};
        if (!in) return q;
        const int64_t n = p / P, pix = p - n * P;
        const int64_t oh = pix / Wo, ow = pix - oh * Wo;
        q.xn = x + n * C * H * W;
        q.ih0 = oh * stride - pad_top;
        q.iw0 = ow * stride - pad_left;
        return q;
    }
    __device__ __forceinline__ float load(const Pix& q, int k) const {
        const int c = k / khw, r = k - c * khw;
        const int i = r / kw, j = r - i * kw;
        const int64_t ih = q.ih0 + i, iw = q.iw0 + j;
        if (!q.ok || ih < 0 || ih >= H || iw < 0 || iw >= W) return 0.f;
        return q.xn[(static_cast<int64_t>(c) * H + ih) * W + iw];
    }
};

// Temporal convolution on frame-major x [B*F, C, S]: k = c * kt + t, p = nf * S + s; frame f + t - kt/2 of the
// same sample, zero outside [0, F).
struct TemporalGather {
    const float* x;
    int64_t C, S;
    int frames, kt;
    struct Pix {
        int64_t off;  // element (nf, c = 0, s)
        int f;        // frame index within the sample
        bool ok;
    };
    __device__ __forceinline__ Pix pixel(int64_t p, bool in) const {
        Pix q{0, 0, in};
        if (!in) return q;
        const int64_t nf = p / S, s = p - nf * S;
        q.off = nf * C * S + s;
        q.f = static_cast<int>(nf % frames);
        return q;
    }
    __device__ __forceinline__ float load(const Pix& q, int k) const {
        const int c = k / kt;
        const int dt = k - c * kt - kt / 2;
        if (!q.ok || q.f + dt < 0 || q.f + dt >= frames) return 0.f;
        return x[q.off + (static_cast<int64_t>(dt) * C + c) * S];
    }
};

static_assert(kConvThreads % kBN == 0 && kConvThreads % kBK == 0, "tile loaders assume whole rows per pass");

template <class G>
__global__ void __launch_bounds__(kConvThreads)
    conv_gemm_kernel(G g, const void* __restrict__ w, int wt, const float* __restrict__ bias, float* __restrict__ y,
                     int64_t O, int K, int64_t P, int64_t NP) {
    __shared__ float ws[kBK][kBM + 4];  // w tile, transposed: ws[k][m]
    __shared__ float xs[kBK][kBN];      // gathered input tile: xs[k][p]
    const int tid = threadIdx.x, tm = tid / 16, tn = tid % 16;
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM, p0 = static_cast<int64_t>(blockIdx.x) * kBN;
    // The loaders: this thread gathers pixel xp of the tile for k rows xk, xk + 4, ... and weight column wk of
    // rows wm, wm + 16, ... (neighbouring threads: neighbouring pixels / neighbouring k of one weight row).
    const int xp = tid % kBN, xk = tid / kBN;
    const int wk = tid % kBK, wm = tid / kBK;
    const typename G::Pix pix = g.pixel(p0 + xp, p0 + xp < NP);
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    for (int k0 = 0; k0 < K; k0 += kBK) {
        const int gk = k0 + wk;
        for (int m = wm; m < kBM; m += kConvThreads / kBK) {
            const int64_t gm = m0 + m;
            ws[wk][m] = (gm < O && gk < K) ? load_w(w, wt, gm * K + gk) : 0.f;
        }
        for (int kk = xk; kk < kBK; kk += kConvThreads / kBN) xs[kk][xp] = k0 + kk < K ? g.load(pix, k0 + kk) : 0.f;
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kBK; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = ws[kk][tm * 4 + i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = xs[kk][tn + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int64_t gm = m0 + tm * 4 + i;
        if (gm >= O) continue;
        const float bv = bias ? bias[gm] : 0.f;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int64_t gp = p0 + tn + 16 * j;
            if (gp >= NP) continue;
            const int64_t n = gp / P, pxl = gp - n * P;
            y[(n * O + gm) * P + pxl] = acc[i][j] + bv;
        }
    }
}

template <class G>
st2v_status launch_conv_gemm(const G& g, const void* w, int wt, const float* bias, float* y, int64_t O, int64_t K,
                             int64_t P, int64_t NP, const char* what) {
    const int64_t gx = (NP + kBN - 1) / kBN, gy = (O + kBM - 1) / kBM;
    if (K > 0x7fffffff - kBK)
        return fail(ST2V_E_UNSUPPORTED, "%s: reduction length %lld exceeds the kernel's int range", what, (long long)K);
    if (gx > 0x7fffffff || gy > 65535)
        return fail(ST2V_E_UNSUPPORTED, "%s: %lld output pixels x %lld channels exceed one launch", what,
                    (long long)NP, (long long)O);
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
    ST2V_LAUNCH(conv_gemm_kernel<G>, grid, kConvThreads, 0, ctx().stream, g, w, wt, bias, y, O, static_cast<int>(K), P,
                NP);
    ST2V_CU_LAUNCHED(what);
    return ST2V_OK;
}

// ---- strided copy ----
struct CopyDesc {
    int ndim;
    int64_t shape[ST2V_MAX_COPY_DIMS];
    int64_t ss[ST2V_MAX_COPY_DIMS];  // source strides (elements)
    int64_t ds[ST2V_MAX_COPY_DIMS];  // destination strides
};

// Copies of fewer than 2^31 elements (nearly all) split the index into coordinates with 32-bit divisions by
// multiply-high with a magic number per extent (for 0 <= n < 2^31 and 1 <= d < 2^31: q = (umulhi(n, m) + n) >> s,
// s = ceil(log2 d), m = floor(2^32 (2^s - d) / d) + 1), a few instructions where a 64-bit division takes dozens.
struct Div32 {
    uint32_t magic = 1, shift = 0;
};
inline Div32 make_div32(uint32_t d) {
    Div32 r;
    while ((uint64_t(1) << r.shift) < d) ++r.shift;
    r.magic = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << r.shift) - d)) / d + 1);
    return r;
}
struct CopyDesc32 {
    int ndim;
    uint32_t shape[ST2V_MAX_COPY_DIMS];
    Div32 div[ST2V_MAX_COPY_DIMS];
    int64_t ss[ST2V_MAX_COPY_DIMS];
    int64_t ds[ST2V_MAX_COPY_DIMS];
};
// n / d for 0 <= n < 2^31 (the d of make_div32(d)).
__device__ inline uint32_t div32(uint32_t n, Div32 d) {
#ifdef ST2V_CUDA_EMU
    const uint32_t hi = static_cast<uint32_t>((static_cast<uint64_t>(n) * d.magic) >> 32);
#else
    const uint32_t hi = __umulhi(n, d.magic);
#endif
    return (hi + n) >> d.shift;
}
// r / extent k, for each index width
__device__ inline int64_t div_extent(const CopyDesc& d, int k, int64_t r) { return r / d.shape[k]; }
__device__ inline uint32_t div_extent(const CopyDesc32& d, int k, uint32_t r) { return div32(r, d.div[k]); }

// Idx: int64_t with CopyDesc, uint32_t with CopyDesc32.
template <typename T, typename Desc, typename Idx>
__global__ void copy_strided_kernel(const T* __restrict__ src, T* __restrict__ dst, Desc d, Idx n) {
    for (Idx i = blockIdx.x * static_cast<Idx>(blockDim.x) + threadIdx.x; i < n; i += static_cast<Idx>(gridDim.x) * blockDim.x) {
        Idx r = i;
        int64_t so = 0, dof = 0;
        for (int k = d.ndim - 1; k > 0; --k) {
            const Idx q = div_extent(d, k, r), c = r - q * static_cast<Idx>(d.shape[k]);
            so += static_cast<int64_t>(c) * d.ss[k];
            dof += static_cast<int64_t>(c) * d.ds[k];
            r = q;
        }
        so += static_cast<int64_t>(r) * d.ss[0];
        dof += static_cast<int64_t>(r) * d.ds[0];
        dst[dof] = src[so];
    }
}

template <typename T>
st2v_status launch_copy(const void* src, void* dst, const CopyDesc& d, int64_t n) {
    if (n <= INT32_MAX) {
        CopyDesc32 d32{};
        d32.ndim = d.ndim;
        for (int k = 0; k < d.ndim; ++k) {  // every extent divides into n, so each is < 2^31 too
            d32.shape[k] = static_cast<uint32_t>(d.shape[k]);
            d32.div[k] = make_div32(static_cast<uint32_t>(d.shape[k]));
            d32.ss[k] = d.ss[k];
            d32.ds[k] = d.ds[k];
        }
        ST2V_LAUNCH((copy_strided_kernel<T, CopyDesc32, uint32_t>), grid_for(n), kThreads, 0, ctx().stream,
                    static_cast<const T*>(src), static_cast<T*>(dst), d32, static_cast<uint32_t>(n));
    } else {
        ST2V_LAUNCH((copy_strided_kernel<T, CopyDesc, int64_t>), grid_for(n), kThreads, 0, ctx().stream,
                    static_cast<const T*>(src), static_cast<T*>(dst), d, n);
    }
    ST2V_CU_LAUNCHED("copy_strided_kernel");
    return ST2V_OK;
}

// ---- broadcast add, nearest resize ----
__global__ void add_broadcast_kernel(float* a, const float* b, int64_t n, int64_t div, int64_t inner) {
    if (div == 1) {
        ST2V_GRID_STRIDE(i, n) a[i] += b[i % inner];
    } else {
        ST2V_GRID_STRIDE(i, n) a[i] += b[(i / div) % inner];
    }
}
// The same for n < 2^31 with the 32-bit magic-number divisions (Div32).
__global__ void add_broadcast32_kernel(float* a, const float* b, uint32_t n, Div32 div, uint32_t inner, Div32 inner_div) {
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const uint32_t q = div32(i, div);
        a[i] += b[q - div32(q, inner_div) * inner];  // b[(i / div) % inner]
    }
}

__global__ void upsample_nearest_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t NC, int64_t H,
                                        int64_t W, int64_t oh, int64_t ow, float sh, float sw) {
    ST2V_GRID_STRIDE(i, NC * oh * ow) {
        const int64_t c = i % ow, rest = i / ow, r = rest % oh, nc = rest / oh;
        // float product then floor, exactly as the CPU op (t2v::upsample_nearest)
        int64_t sr = static_cast<int64_t>(floorf(static_cast<float>(r) * sh));
        int64_t sc = static_cast<int64_t>(floorf(static_cast<float>(c) * sw));
        if (sr > H - 1) sr = H - 1;
        if (sc > W - 1) sc = W - 1;
        y[i] = x[(nc * H + sr) * W + sc];
    }
}

}  // namespace

st2v_status k_conv2d(const st2v_conv2d_args* a) {
    if (a->N < 0 || a->C < 1 || a->H < 1 || a->W < 1 || a->O < 0 || a->kh < 1 || a->kw < 1 || a->stride < 1 ||
        a->pad_top < 0 || a->pad_left < 0 || a->Ho < 0 || a->Wo < 0)
        return fail(ST2V_E_INVALID_ARG, "conv2d: bad sizes (C %lld, H %lld, W %lld, kernel %dx%d, stride %d)",
                    (long long)a->C, (long long)a->H, (long long)a->W, a->kh, a->kw, a->stride);
    if (!valid_type(a->w_type)) return fail(ST2V_E_INVALID_ARG, "conv2d: unknown weight dtype %d", a->w_type);
    const int64_t P = a->Ho * a->Wo, NP = a->N * P, K = a->C * a->kh * a->kw;
    if (NP == 0 || a->O == 0) return ST2V_OK;
    if (!a->d_x || !a->d_w || !a->d_y) return fail(ST2V_E_INVALID_ARG, "conv2d: null pointer");
    Conv2dGather g;
    g.x = a->d_x, g.C = a->C, g.H = a->H, g.W = a->W, g.Wo = a->Wo, g.P = P;
    g.kw = a->kw, g.khw = a->kh * a->kw, g.stride = a->stride, g.pad_top = a->pad_top, g.pad_left = a->pad_left;
    return launch_conv_gemm(g, a->d_w, a->w_type, a->d_bias, a->d_y, a->O, K, P, NP, "conv2d_kernel");
}

st2v_status k_conv_temporal(const st2v_conv_temporal_args* a) {
    if (a->frames < 1 || a->kt < 1 || a->kt % 2 == 0 || a->NF < 0 || a->NF % a->frames != 0 || a->C < 1 ||
        a->S < 0 || a->O < 0)
        return fail(ST2V_E_INVALID_ARG, "conv_temporal: bad sizes (batch %lld, frames %d, kernel %d, C %lld)",
                    (long long)a->NF, a->frames, a->kt, (long long)a->C);
    if (!valid_type(a->w_type)) return fail(ST2V_E_INVALID_ARG, "conv_temporal: unknown weight dtype %d", a->w_type);
    const int64_t NP = a->NF * a->S, K = a->C * a->kt;
    if (NP == 0 || a->O == 0) return ST2V_OK;
    if (!a->d_x || !a->d_w || !a->d_y) return fail(ST2V_E_INVALID_ARG, "conv_temporal: null pointer");
    TemporalGather g;
    g.x = a->d_x, g.C = a->C, g.S = a->S, g.frames = a->frames, g.kt = a->kt;
    return launch_conv_gemm(g, a->d_w, a->w_type, a->d_bias, a->d_y, a->O, K, a->S, NP, "conv_temporal_kernel");
}

st2v_status k_copy_strided(const void* src, const int64_t* src_strides, void* dst, const int64_t* dst_strides,
                           const int64_t* shape, int ndim, int elem_bytes) {
    if (ndim < 0 || ndim > ST2V_MAX_COPY_DIMS)
        return fail(ST2V_E_INVALID_ARG, "copy_strided: %d dims (at most %d)", ndim, ST2V_MAX_COPY_DIMS);
    if (ndim > 0 && (!shape || !src_strides || !dst_strides))
        return fail(ST2V_E_INVALID_ARG, "copy_strided: null shape or strides");
    int64_t n = 1;
    for (int k = 0; k < ndim; ++k) {
        if (shape[k] < 0) return fail(ST2V_E_INVALID_ARG, "copy_strided: negative extent %lld", (long long)shape[k]);
        n *= shape[k];
    }
    if (n == 0) return ST2V_OK;
    if (!src || !dst) return fail(ST2V_E_INVALID_ARG, "copy_strided: null pointer");
    // Drop extent-1 dims and merge neighbours that are contiguous on both sides: less index math per element.
    CopyDesc d{};
    for (int k = 0; k < ndim; ++k) {
        if (shape[k] == 1) continue;
        if (d.ndim > 0) {
            const int l = d.ndim - 1;
            if (d.ss[l] == src_strides[k] * shape[k] && d.ds[l] == dst_strides[k] * shape[k]) {
                d.shape[l] *= shape[k];
                d.ss[l] = src_strides[k];
                d.ds[l] = dst_strides[k];
                continue;
            }
        }
        d.shape[d.ndim] = shape[k];
        d.ss[d.ndim] = src_strides[k];
        d.ds[d.ndim] = dst_strides[k];
        ++d.ndim;
    }
    if (d.ndim == 0) {  // a single element
        d.ndim = 1, d.shape[0] = 1, d.ss[0] = 0, d.ds[0] = 0;
    }
    switch (elem_bytes) {
        case 1: return launch_copy<uint8_t>(src, dst, d, n);
        case 2: return launch_copy<uint16_t>(src, dst, d, n);
        case 4: return launch_copy<uint32_t>(src, dst, d, n);
        case 8: return launch_copy<uint64_t>(src, dst, d, n);
        default: return fail(ST2V_E_INVALID_ARG, "copy_strided: element size %d (1, 2, 4 or 8)", elem_bytes);
    }
}

st2v_status k_add_broadcast(float* a, const float* b, int64_t n, int64_t div, int64_t inner) {
    if (n < 0 || div < 1 || inner < 1)
        return fail(ST2V_E_INVALID_ARG, "add_broadcast: n %lld, div %lld, inner %lld", (long long)n, (long long)div,
                    (long long)inner);
    if (n == 0) return ST2V_OK;
    if (!a || !b) return fail(ST2V_E_INVALID_ARG, "add_broadcast: null pointer");
    if (n <= INT32_MAX && div <= INT32_MAX && inner <= INT32_MAX) {
        ST2V_LAUNCH(add_broadcast32_kernel, grid_for(n), kThreads, 0, ctx().stream, a, b, static_cast<uint32_t>(n),
                    make_div32(static_cast<uint32_t>(div)), static_cast<uint32_t>(inner),
                    make_div32(static_cast<uint32_t>(inner)));
        ST2V_CU_LAUNCHED("add_broadcast32_kernel");
        return ST2V_OK;
    }
    ST2V_LAUNCH(add_broadcast_kernel, grid_for(n), kThreads, 0, ctx().stream, a, b, n, div, inner);
    ST2V_CU_LAUNCHED("add_broadcast_kernel");
    return ST2V_OK;
}

st2v_status k_upsample_nearest(const float* x, float* y, int64_t NC, int64_t H, int64_t W, int64_t oh, int64_t ow) {
    if (NC < 0 || H < 1 || W < 1 || oh < 1 || ow < 1)
        return fail(ST2V_E_INVALID_ARG, "upsample_nearest: %lldx%lld -> %lldx%lld", (long long)H, (long long)W,
                    (long long)oh, (long long)ow);
    const int64_t n = NC * oh * ow;
    if (n == 0) return ST2V_OK;
    if (!x || !y) return fail(ST2V_E_INVALID_ARG, "upsample_nearest: null pointer");
    // the scale factors exactly as the CPU op computes them (float / float on the host)
    const float sh = static_cast<float>(H) / static_cast<float>(oh), sw = static_cast<float>(W) / static_cast<float>(ow);
    ST2V_LAUNCH(upsample_nearest_kernel, grid_for(n), kThreads, 0, ctx().stream, x, y, NC, H, W, oh, ow, sh, sw);
    ST2V_CU_LAUNCHED("upsample_nearest_kernel");
    return ST2V_OK;
}

}  // namespace st2v::cuda
