// st2v::ops — the compute ops every model stage is built from (CPU backend).
//
// Conventions
// - Activations are f32 and contiguous unless an op says it accepts views. Weights may be f32, f16 or bf16
//   (2-byte weights stay 2 bytes in memory; kernels widen panels into scratch while they run).
// - Ops allocate their outputs with Tensor::empty (so from the thread's Arena when one is installed) and
//   run on the thread's current ThreadPool. Reductions are split statically => bitwise deterministic for a
//   given thread count.
// - Bad shapes/dtypes throw st2v::Error (ERR_SHAPE_MISMATCH / ERR_DTYPE / ERR_INVALID_ARG), never abort.
// - Each op has a readable reference implementation (ops/ref/, double accumulation where it matters)
//   used by the tests, and a fast path chosen at run time (AVX-512 -> AVX2/FMA -> portable, see cpu.h).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace st2v::ops {

enum class Act : int { kNone = 0, kSilu = 1, kGelu = 2 /* exact erf GELU */ };

// ---- GEMM ------------------------------------------------------------------------------------------
// A strided matrix operand: element (r, c) is at data + r*rs + c*cs (in elements of dtype).
// dtype f32, f16 or bf16. Transposes are expressed by swapping rs/cs.
struct MatRef {
    const void* data = nullptr;
    DType dtype = DType::F32;
    int64_t rs = 0, cs = 1;
};
struct GemmEpilogue {
    const float* bias_col = nullptr;  // length N: C[m, n] += bias_col[n]
    const float* bias_row = nullptr;  // length M: C[m, n] += bias_row[m]
    Act act = Act::kNone;             // applied after bias
    bool accumulate = false;          // C = act(C + A*B + bias) when true; C = act(A*B + bias) otherwise
    float alpha = 1.f;                // scales A*B
    // Internal (ops that consume C tile by tile, e.g. linear_geglu): when set, each tile's final values (after
    // alpha, the earlier depth blocks' sums in C, the bias; act must be kNone) go to tile_sink as an mr x nr block
    // (row stride ld) of C's rows [m0, m0+mr) and columns [n0, n0+nr) instead of into C. C is then only written for
    // the partial sums of a GEMM deeper than one depth block (and may be null when it is not).
    void (*tile_sink)(void* ctx, const float* tile, int64_t ld, int64_t m0, int64_t mr, int64_t n0, int64_t nr) = nullptr;
    void* sink_ctx = nullptr;
};
// C[M, N] (row stride ldc, f32) = epilogue(alpha * A[M, K] * B[K, N]). Runs on the current pool.
void gemm(int64_t M, int64_t N, int64_t K, const MatRef& A, const MatRef& B, float* C, int64_t ldc,
          const GemmEpilogue& ep = {});

// y[..., out] = x[..., in] @ w[out, in]^T + b[out], then act. x f32 (rows may be strided: any view whose last
// dim is contiguous and whose leading dims collapse to one row stride), w f32/f16/bf16, b f32/f16/bf16 or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Act act = Act::kNone);
// y[..., sum of outs] = x[..., in] @ concat(ws, rows)^T without bias, in one GEMM (x read and packed once; e.g. a
// self-attention's q, k, v): the same values, bit for bit, as one linear per weight into its columns.
Tensor linear_concat(const Tensor& x, const std::vector<Tensor>& ws);
// y += x W^T + b in one GEMM (the residual add fused into the tile stores): y f32 of x's shape with out_features
// last. The sums round as (y + x W^T) + b instead of y + (x W^T + b). A strided y takes two passes (linear, then add).
void linear_add_(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b);
// y[..., I] = geglu(x W^T + b) for w [2I, in] (the first I rows make the values, the last I the gates), in one GEMM
// whose tiles go through GEGLU as they are made: the [..., 2I] product is never written out (when in fits one depth
// block of the GEMM; deeper, only its partial sums are). The same bits as geglu(linear(x, w, b)).
Tensor linear_geglu(const Tensor& x, const Tensor& w, const Tensor& b);

// ---- Convolutions ----------------------------------------------------------------------------------
// x [N, Cin, H, W] f32, w [Cout, Cin, kh, kw] (kh = kw = 1 or 3; w may also be [Cout, Cin] for 1x1),
// b [Cout] or undefined. pad_h/pad_w zero padding (top/left; bottom/right symmetric unless given).
struct Conv2dParams {
    int stride = 1;
    int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    static Conv2dParams same(int k, int stride = 1) {
        Conv2dParams p;
        p.stride = stride;
        p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = k / 2;
        return p;
    }
};
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p);
// Temporal convolution Conv3d(C->C, kernel (3,1,1), padding (1,0,0)) on video activations x [B*F, C, H, W]
// (frame-major). w [Cout, Cin, 3, 1, 1] (or [Cout, Cin, 3]); zero padding in time.
Tensor conv_temporal(const Tensor& x, int frames, const Tensor& w, const Tensor& b);
// Conv1d over the last axis with "same" padding, as the APM mixer uses it: x [N, Cin, L], w [Cout, Cin, k] (k odd).
Tensor conv1d_same(const Tensor& x, const Tensor& w, const Tensor& b);

// ---- Normalisation ---------------------------------------------------------------------------------
// GroupNorm on x [B*F, C, H, W] (or [N, C, L...]); statistics over (C/groups channels) x (frames) x (spatial):
// frames = 1 -> per frame (2-D GroupNorm); frames = F -> across all F frames of a sample (GroupNorm on the
// 5-D [B, C, F, H, W] view). Affine gamma/beta [C] (f32/f16/bf16). Optional fused SiLU on the output.
Tensor group_norm(const Tensor& x, int frames, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool silu = false);
// LayerNorm over the last axis: x [..., C], gamma/beta [C] (undefined = no affine).
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);

// ---- Attention -------------------------------------------------------------------------------------
// Multi-head attention, softmax(Q K^T * scale) V, no mask; computed in tiles with an online softmax, the
// Lq x Lk score matrix is never materialised.
// q [B, Lq, H*D], k [B, Lk, H*D], v [B, Lk, H*Dv] (views allowed: last dim contiguous, any row/batch stride),
// head h uses columns [h*D, (h+1)*D). Output [B, Lq, H*Dv] contiguous.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);

// ---- Elementwise & data movement ---------------------------------------------------------------------
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);            // exact (erf)
Tensor geglu(const Tensor& x);           // x [..., 2C] -> x[..., :C] * gelu(x[..., C:])
Tensor add(const Tensor& a, const Tensor& b);   // same shape, or b broadcast from a suffix of a's shape
void add_(Tensor& a, const Tensor& b);          // in place, same rules
Tensor mul(const Tensor& a, const Tensor& b);   // same rules as add
Tensor scale(const Tensor& a, float s);
Tensor axpby(const Tensor& x, float a, const Tensor& y, float b);   // a*x + b*y, same shape
Tensor concat(const std::vector<Tensor>& xs, int dim);              // any strides in, contiguous out
Tensor upsample_nearest2x(const Tensor& x);                          // [N, C, H, W] -> [N, C, 2H, 2W]
// Sinusoidal timestep embedding as diffusers' Timesteps: half = dim/2, freq_i = exp(-ln(max_period) * i /
// (half - shift)), emb = [sin, cos] or [cos, sin] when flip_sin_to_cos (the UNet uses flip = true, shift 0).
Tensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos = true,
                          float downscale_freq_shift = 0.f, float max_period = 10000.f);
// The frequency table of timestep_embedding (dim/2 values, PyTorch's float32 exp), shared with the CUDA kernel.
std::vector<float> timestep_frequencies(int dim, float downscale_freq_shift = 0.f, float max_period = 10000.f);

}  // namespace st2v::ops
