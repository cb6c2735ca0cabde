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

}  // namespace st2v::backend::cuda_ops
