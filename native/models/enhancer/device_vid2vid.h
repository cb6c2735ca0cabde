// The MS-Vid2Vid-XL enhancer denoiser (Vid2VidUNet) on the CUDA backend, for stage 3 on a GPU.
//
// Built from a bound CPU Vid2VidUNet (its binding, config and key checks are the specification) by uploading its
// modules once: the same t2v device blocks as DeviceUNet3D (device::ResnetBlock, TemporalConv, SpatialTransformer,
// TemporalTransformer, Conv2d with the Downsample's (2, 1) padding). forward() runs the graph Vid2VidUNet::forward runs
// (vid2vid_graph.h, written once for both backends); only backend::cuda_ops calls run on the device, the timestep
// embedding's float32-pow table is computed on the host (enhancer::sinusoidal_embedding) and uploaded.
//
// Weight dtypes as DeviceUNet3D: F32 (parity with the CPU), or BF16 / F16 resident for the GEMM and convolution
// weights (norms and biases f32). Activations f32. The device transformer blocks run their feed-forwards in token
// slices of at most 256 MB of the GEGLU projection (as the CPU's ff_token_chunk does: a memory tiling, same result).
//
// Plain C++ (no CUDA headers): compiled into st2v_core in every build; without a usable CUDA backend the
// constructor throws ERR_NO_CUDA before uploading anything.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "backend/cuda_ops.h"
#include "models/enhancer/vid2vid_unet.h"
#include "models/t2v/device_unet3d.h"

namespace st2v::enhancer {

class DeviceVid2VidUNet {
  public:
    // wdt: F32, BF16 or F16. The CPU model only lends its bound weights (it need not outlive this object).
    DeviceVid2VidUNet(const Vid2VidUNet& cpu, DType wdt = DType::F32);
    const Vid2VidConfig& config() const { return cfg_; }
    DType weight_dtype() const { return wdt_; }
    // x [B, in_dim, F, H, W]; t: one timestep per sample (or one for all); y [B, T, context_dim] (per sample, as the
    // CPU's). -> v-prediction [B, out_dim, F, H, W]. The same shape checks as Vid2VidUNet::forward.
    backend::cuda_ops::DeviceTensor forward(const backend::cuda_ops::DeviceTensor& x, const std::vector<float>& t,
                                            const backend::cuda_ops::DeviceTensor& y) const;
    // Host in, host out (the enhancer pipeline's v-model): uploads x and y, downloads v.
    Tensor forward_host(const Tensor& x, const std::vector<float>& t, const Tensor& y) const;
    // forward() calls so far (checks that a pipeline ran its denoiser here).
    int64_t forwards() const { return forwards_.load(); }

  private:
    struct Module {
        enhancer::Module::Kind kind = enhancer::Module::kRes;
        t2v::device::ResnetBlock res;
        t2v::device::TemporalConv tconv;
        t2v::device::SpatialTransformer spatial;
        t2v::device::TemporalTransformer temporal;
        t2v::device::Conv2d conv;
    };
    struct Block {
        std::string name;  // the CPU block's
        std::vector<Module> mods;
    };
    Block upload_block(const enhancer::Block& b) const;
    Vid2VidConfig cfg_;
    DType wdt_;
    t2v::device::Linear te1_, te2_;
    std::vector<Block> input_, output_;
    Block middle_;
    t2v::device::Norm out_norm_;
    t2v::device::Conv2d out_conv_;
    mutable std::atomic<int64_t> forwards_{0};
};

}  // namespace st2v::enhancer
