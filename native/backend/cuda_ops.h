// Typed CUDA ops for model code: DeviceTensor (a contiguous device tensor) and wrappers over the backend ABI
// with the same argument checks and signatures as their CPU counterparts in ops/ops.h and runtime/schedules.h,
// so model code can be written once against either. Plain C++ (no CUDA headers): it compiles in every build;
// without a usable GPU the first device allocation throws ERR_NO_CUDA. All ops are fp32 activations; GEMM
// weights may also be bf16/f16 when the activation operand has the same dtype.
#pragma once
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "ops/ops.h"

namespace st2v::backend::cuda_ops {

class DeviceTensor {
  public:
    DeviceTensor() = default;
    static DeviceTensor empty(const Shape& shape, DType dtype = DType::F32);
    static DeviceTensor zeros(const Shape& shape, DType dtype = DType::F32);
    // Contiguous copy of a host tensor (f32, f16 or bf16; any strides).
    static DeviceTensor from_host(const Tensor& t);
    Tensor to_host() const;

    bool defined() const { return static_cast<bool>(buf_); }
    const Shape& shape() const { return shape_; }
    int ndim() const { return shape_.ndim(); }
    int64_t size(int i) const { return shape_[i]; }
    int64_t numel() const { return shape_.numel(); }
    DType dtype() const { return dtype_; }
    size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
    void* raw() const { return buf_ ? buf_->get() : nullptr; }
    float* f32() const;  // checked: dtype must be F32
    // Same storage, new shape of the same numel.
    DeviceTensor reshape(const Shape& s) const;
    // A converted copy (f32 <-> f16 / bf16, round to nearest even); the same tensor when dtype matches.
    DeviceTensor to(DType dtype) const;

  private:
    std::shared_ptr<DeviceBuffer> buf_;
    Shape shape_;
    DType dtype_ = DType::F32;
};

enum class Act : int { kNone = 0, kSilu = 1, kGelu = 2 };

DeviceTensor silu(const DeviceTensor& x);
DeviceTensor gelu(const DeviceTensor& x);   // exact erf
DeviceTensor geglu(const DeviceTensor& x);  // [..., 2C] -> [..., C]
DeviceTensor axpby(const DeviceTensor& x, float a, const DeviceTensor& y, float b);
// x [B*frames, C, ...] (see ops::group_norm); gamma/beta [C] f32 device tensors or undefined.
DeviceTensor group_norm(const DeviceTensor& x, int frames, int groups, const DeviceTensor& gamma,
                        const DeviceTensor& beta, float eps, bool silu = false);
DeviceTensor layer_norm(const DeviceTensor& x, const DeviceTensor& gamma, const DeviceTensor& beta, float eps);
// y[..., out] = x[..., in] @ w[out, in]^T + b[out], then act. w f32, f16 or bf16 (resident 2-byte weights);
// x f32 or w's dtype: an f32 x with 2-byte weights is rounded to w's dtype (fp32 accumulate). b f32. y f32.
DeviceTensor linear(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b, Act act = Act::kNone);
// q [B, Lq, H*D], k [B, Lk, H*D], v [B, Lk, H*Dv] -> [B, Lq, H*Dv]
DeviceTensor attention(const DeviceTensor& q, const DeviceTensor& k, const DeviceTensor& v, int heads, float scale);
// [n] timesteps -> [n, dim] (dim even), the CPU op's frequency table.
DeviceTensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos = true,
                                float downscale_freq_shift = 0.f, float max_period = 10000.f);
DeviceTensor cfg_combine(const DeviceTensor& uncond, const DeviceTensor& cond, float scale);
// One DDIM step with ᾱ_t, ᾱ_prev (runtime::DdimScheduler's values); noise required when eta > 0.
DeviceTensor ddim_step(const DeviceTensor& eps, const DeviceTensor& x, float a_t, float a_prev, float eta,
                       const DeviceTensor* noise = nullptr);

// ---- the remaining ops of the UNet3D / CAM / APM forward (same contracts as their ops/ops.h counterparts) ----
// Implemented in cuda_ops.cpp over the ABI 2 entries (native/cuda/kernels_layout.cu; docs/cuda.md has the status).
// x [N, Cin, H, W] f32; w [Cout, Cin, kh, kw] f32 / f16 / bf16 (resident weights, widened in the kernel, fp32
// accumulate); b [Cout] f32 or undefined; padding and stride as ops::Conv2dParams. -> [N, Cout, Ho, Wo] f32.
DeviceTensor conv2d(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b, const ops::Conv2dParams& p);
// Convolutions with bf16 weights as tensor-core GEMMs (unfold + cuBLASLt; activations rounded to bf16, so the error
// is the bf16 bound, not the fp32 one). On by default (2.5x faster than the direct kernel for the full-size bf16
// step on an H200); set_conv_gemm(false), or the environment ST2V_CUDA_CONV=direct read at the first convolution,
// selects the direct fp32 kernel. f32 / f16 weights always take the direct kernel.
void set_conv_gemm(bool on);
bool conv_gemm();
// Conv3d kernel (3,1,1), zero padding in time, on frame-major x [B*F, C, H, W]; w [Cout, Cin, 3, 1, 1] or
// [Cout, Cin, 3] (any of the three dtypes); b [Cout] f32.
DeviceTensor conv_temporal(const DeviceTensor& x, int frames, const DeviceTensor& w, const DeviceTensor& b);
// Conv1d over the last axis, "same" padding (k odd): x [N, Cin, L], w [Cout, Cin, k], b [Cout] f32.
DeviceTensor conv1d_same(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b);
// Contiguous permuted copy (up to 6 dims), like Tensor::permute(perm).contiguous().
DeviceTensor permute(const DeviceTensor& x, const std::vector<int>& perm);
// a += b: same shape, or b broadcast from a suffix of a's shape (ops::add_ rules). f32.
void add_(DeviceTensor& a, const DeviceTensor& b);
// x [N, C, S...] += v[N, C] broadcast over the trailing dims (the resnet's time-embedding add). f32.
void add_channel_(DeviceTensor& x, const DeviceTensor& v);
// Contiguous concatenation along `dim` (all other dims equal). f32.
DeviceTensor concat(const std::vector<DeviceTensor>& xs, int dim);
// Nearest resize [N, C, H, W] -> [N, C, oh, ow], source index floor(r * H / oh) clamped (t2v::upsample_nearest).
DeviceTensor upsample_nearest(const DeviceTensor& x, int64_t oh, int64_t ow);
// Contiguous copy of x[..., start:end, ...] along `dim`.
DeviceTensor slice(const DeviceTensor& x, int dim, int64_t start, int64_t end);
// Each item along dim 0 repeated `repeats` times in place order ([B, ...] -> [B*repeats, ...]).
DeviceTensor repeat_interleave(const DeviceTensor& x, int repeats);

}  // namespace st2v::backend::cuda_ops
