// Internal GEMM driver shared by gemm.cpp and the convolutions (not part of the public ops API).
//
// The driver is BLIS-style: C is computed in MR x NR register tiles from packed f32 panels. Operands are
// produced by "packers": a packer writes rows [r0, r0+nr) (nr <= R; rows >= nr are zero-filled) of depth
// [k0, k0+kc) into dst[k*R + i]. For A the rows are the M axis, for B the rows are the N axis; depth is K.
// Packers are where f16/bf16 are widened and where strided/transposed operands and implicit im2col live.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ops/ops.h"

namespace st2v::ops::detail {

// A GEMM epilogue's activation on one value (the packed driver's tiles and the portable GEMM's elements).
inline float act_apply(float x, Act a) {
    switch (a) {
        case Act::kNone: return x;
        case Act::kSilu: return x / (1.f + std::exp(-x));
        case Act::kGelu: return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
    }
    return x;
}

using PackFn = void (*)(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst);
struct PackSrc {
    PackFn fn = nullptr;
    const void* ctx = nullptr;
};

// A strided matrix as a packer source: element (row r, depth k) at data + r*rstride + k*dstride.
struct MatPack {
    const void* data;
    DType dtype;
    int64_t rstride, dstride;
};
void pack_mat(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst);
// dst[k * R + j] = src[k * stride + j] for k < n, j < R (R = 16 or 32), through AVX registers (AVX2 CPUs only): whole
// f32 rows into an R-wide B micro-panel (pack_mat's and the temporal Winograd packer's full panels).
void copy_rows_avx2(const float* src, int64_t stride, int64_t n, int R, float* dst);

// Widens n elements (contiguous) of dtype at src into dst (F16C / vector paths when the CPU has them).
void convert_run(const void* src, DType dt, int64_t n, float* dst);

// The active microkernel's tile, MR rows (A's row panels) by NR columns (B's micro-panels), and the depth block KC for
// a problem of depth K.
struct GemmTileBlocking {
    int MR, NR;
    int64_t KC;
};
GemmTileBlocking gemm_blocking(int64_t K);
// The active level's GEGLU kernel (ops/norm_attn_elementwise.cpp, the one ops::geglu runs):
// y[r * ldy + c] = x[r * ldx + c] * gelu(x[r * ldx + n + c]) for r < rows, c < n.
using GegluRowsFn = void (*)(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n);
GegluRowsFn geglu_rows_kernel();
// Tests and the bench only: with false, linear_geglu runs linear then geglu (two passes; the same bits).
// ST2V_GEGLU_FUSED=off (or 0) sets the starting value to false. Process-wide; returns the old value.
bool set_linear_geglu_fused(bool on);
// Packs all of A [M, K] once in the driver's panel order (for reuse over many GEMMs with the same A, e.g.
// conv weights over a batch): returns the buffer (ceil(M/MR)*MR * K floats, a tensor, so from the current
// Arena when one is installed: no fresh pages per call in a denoising loop) and a packer reading it. The driver
// reads the blocks of a PrepackedA in place.
struct PrepackedA {
    Tensor buf;
    int MR = 0;
    int64_t KC = 0, Mpad = 0;
    const float* data() const { return buf.f32(); }
};
void prepack_a(int64_t M, int64_t K, const PackSrc& a, PrepackedA* out);
void pack_prepacked(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst);

// C[M, N] (row stride ldc) = epilogue(alpha * A * B) with A, B given by packers. Runs on the current pool.
// The per-element K summation order does not depend on the thread count (results are bitwise
// identical for any number of threads).
void gemm_packed(int64_t M, int64_t N, int64_t K, PackSrc a, PackSrc b, float* C, int64_t ldc,
                 const GemmEpilogue& ep);

// Bench only (the `ops` suite's kernel ceiling): calls the active level's microkernel `calls` times on the same
// packed A and B micro-panels of the driver's depth block KC (hot in L1/L2) and the same C tile (add = 1), on the
// calling thread: the kernel's own speed without packing, without the driver and without cold operands. Returns
// the FLOPs done (2 * MR * NR * KC * calls). The panels hold a[k*MR + i] = 1e-3 * ((k*MR + i) % 7) and
// b[k*NR + j] = 1e-3 * ((k*NR + j) % 5); *c00 (when given) receives the tile's element (0, 0) after the calls.
double gemm_kernel_hot_flops(int64_t calls, float* c00 = nullptr);

// Tests only: with on = true and the active ISA AVX2, the GEMM driver uses the AVX-512 blocking (GemmWideTuning)
// with the AVX-512 microkernel's text over SIMDe (or, without SIMDe, a plain C++ R x 32 kernel),
// so the tests check that geometry and kernel on CPUs without AVX-512. Process-wide; returns the old value.
bool set_gemm_emulated_wide(bool on);
// 3x3 convolution, stride 1, padding 1 on all sides, by Winograd F(2x2, 3x3) (ops/conv_winograd.cpp): x [N, C, H, W]
// f32 contiguous, w [O, C, 3, 3] contiguous in f32 / f16 / bf16, bias (O floats) or null, y [N, O, H, W].
// conv2d takes this path when conv3x3_winograd_applies: AVX2 level or wider and, in the default kAuto mode, deep
// enough GEMMs and enough tiles (C >= 96, O >= 64, N * ceil(H/2) * ceil(W/2) >= 256; measured, see the .cpp).
void conv3x3_winograd(const float* x, int64_t N, int64_t C, int64_t H, int64_t W, const void* w, DType wdt, int64_t O,
                      const float* bias, float* y);
bool conv3x3_winograd_applies(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W);
// Tests and the bench only: kOff sends every convolution through the im2col GEMM, kAlways every 3x3 / stride 1 /
// pad 1 one on AVX2 or wider through Winograd whatever its size. Process-wide; returns the old mode.
enum class WinogradMode { kOff, kAuto, kAlways };
WinogradMode set_conv_winograd(WinogradMode mode);
// The mode an environment variable names: off (or 0) / always / anything else auto. The starting modes' parser.
WinogradMode winograd_mode_from_env(const char* name);
// The temporal (3,1,1) convolution's pairs of output frames by Winograd F(2,3) over time (ops/linear_conv.cpp): four
// GEMMs of depth C per pair instead of two of depth 3C (2/3 of the FLOPs); the last frame of an odd count, frames
// = 1 and the portable level stay direct. kAuto: where measured faster (see the .cpp); kAlways: whenever frames >= 2
// on AVX2 or wider; kOff: never. ST2V_TEMPORAL_WINOGRAD=off|auto|always sets the starting mode. Process-wide;
// returns the old mode.
WinogradMode set_temporal_winograd(WinogradMode mode);
bool temporal_winograd_applies(int frames, int64_t C, int64_t O, int64_t S);
// How conv2d's im2col and 1x1 paths spread a batch of images over the threads (ops/linear_conv.cpp): small maps
// grouped side by side in one GEMM, whole images per thread, or each image in turn on all threads.
enum class ConvBatchPath { kPerImage, kByImage, kGrouped };
constexpr int64_t kGroupMaxPixels = 64, kGroupColumns = 512;
ConvBatchPath conv_batch_path(int64_t N, int threads, int64_t P, int64_t Kdim);
// Images per GEMM on the grouped path: as many as fit kGroupColumns columns (at least one, at most N).
int64_t conv_group_images(int64_t N, int64_t P);
// Tests and the bench only: with on = false, every batch goes image by image on all threads (kPerImage). Same bits
// either way. Process-wide; returns the old value.
bool set_conv_batching(bool on);
// Tests and the bench only: with on = true (the default), a call on more than one thread hands out its work from
// a shared counter: with more row panels than column panels each B block is packed once for all threads, which then
// take row blocks (gemm_shared_b); otherwise A is, and the threads take column bands (gemm_shared_a). With false, each
// thread owns a fixed band of C and packs all it needs itself (the older driver). Same bits either way.
// Process-wide; returns the old value.
bool set_gemm_dynamic(bool on);
// Tests and the bench only: with on = true (the default), a shallow GEMM (K <= 256, K * N floats <= 512 KB) whose A is
// a row-major f32 matrix (contiguous along depth) reads A's full row panels in place on levels with such a kernel
// (AVX2: 6 x 16), skipping the packing pass, where A is not shared by all threads (one thread, or C with more row
// panels than column panels); with false, A is always packed. Same bits either way. ST2V_GEMM_DIRECT_A=off (or 0) sets
// the starting value to false. Process-wide; returns the old value.
bool set_gemm_direct_a(bool on);
// Tests and the bench: whether the rule above lets gemm(M, N, K, A, ...) on the current level read A in place (N: the
// columns of C one call covers).
bool gemm_direct_a_applies(int64_t N, int64_t K, const MatRef& A);
// Tests and the tuning bench only: the AVX-512 level's blocking (also used by the emulated-wide mode): an R x 32
// microkernel (R = 6, 12 or 14 rows), the depth block KC, the row block MC, the column block NC, and the order of
// the two innermost loops (a_outer: each A micro-panel stays in L1 while the B micro-panels stream from L2;
// default: each B micro-panel stays in L1 while the A micro-panels stream). Process-wide; set it only while no
// GEMM runs and no prepacked A (conv weights) made under another blocking is in use. Returns the old tuning;
// invalid values are an St2vError (ERR_INVALID_ARG).
// The defaults are the AVX-512 level's blocking: 14 x 32, KC 256, MC 70 (measured best of 40 variants on an
// Intel Xeon with AVX-512 BF16, 2 threads: bench/results/cpu-tune-*.json; not measured on Zen 4).
struct GemmWideTuning {
    int rows = 14;
    int64_t KC = 256, MC = 70, NC = 3072;
    bool a_outer = false;
};
GemmWideTuning set_gemm_wide_tuning(const GemmWideTuning& t);
// The same for the AVX2 level (6 x 16 kernel): depth, row and column blocks. Returns the old blocking.
struct GemmAvx2Blocking {
    int64_t KC = 512, MC = 192, NC = 3072;
};
GemmAvx2Blocking set_gemm_avx2_blocking(const GemmAvx2Blocking& b);
GemmAvx2Blocking gemm_avx2_blocking();
GemmWideTuning gemm_wide_tuning();
// Which kernels the emulated-wide mode runs: kern_avx512_<R>x32's own text over SIMDe (libsimde-dev found at
// build time), or plain C++ R x 32 kernels.
const char* gemm_emulated_wide_kind();

}  // namespace st2v::ops::detail
