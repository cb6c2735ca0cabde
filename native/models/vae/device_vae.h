// The VAE (AutoencoderKL) on the CUDA backend: stage 2's frame decode and stage 3's 720p encode / decode on a GPU.
//
// Built from a bound CPU AutoencoderKL (its weight names, detected config and GroupNorm groups are the
// specification) by uploading its weights once, widened to f32: the VAE has no bf16 bound to spend (the
// enhancer's latents go through its encoder and decoder unguided). encoder() / decode() run the graph the CPU's
// untiled AutoencoderKL::encoder / decode run (vae_graph.h, written once over either backend); the mid-block's single
// attention head (512 wide for SD 2.1) takes the backend's GEMM attention path (docs/cuda.md). No tiling: the
// host-side *_host calls run one sample at a time, so device memory is bounded by one frame (about 2.4 GB of
// activations for a 1280x720 decode), not by the batch.
//
// Plain C++ (no CUDA headers): compiled into st2v_core in every build; without a usable CUDA backend the
// constructor throws ERR_NO_CUDA before uploading anything.
#pragma once
#include <atomic>
#include <string>
#include <unordered_map>

#include "backend/cuda_ops.h"
#include "models/vae/vae.h"

namespace st2v::vae {

struct DeviceVaeOps;

class DeviceAutoencoderKL {
  public:
    // The CPU model only lends its bound weights (it need not outlive this object).
    explicit DeviceAutoencoderKL(const AutoencoderKL& cpu);
    const Config& config() const { return cfg_; }

    // x [N, 3, H, W] in [-1, 1] -> encoder output before quant_conv [N, 2*latent, H/f, W/f] (as the CPU's encoder()).
    backend::cuda_ops::DeviceTensor encoder(const backend::cuda_ops::DeviceTensor& x) const;
    // z [N, latent, h, w] (unscaled) -> image [N, 3, h*f, w*f] (no clamp).
    backend::cuda_ops::DeviceTensor decode(const backend::cuda_ops::DeviceTensor& z) const;

    // Host in, host out, one sample at a time (the pipelines' calls; same checks and results as the CPU's).
    Posterior encode_host(const Tensor& x) const;
    Tensor decode_host(const Tensor& z) const;
    // encoder() / decode() calls so far (checks that a pipeline used this model).
    int64_t calls() const { return calls_.load(); }

  private:
    friend struct DeviceVaeOps;  // device_vae.cpp: the CUDA backend of the shared graph (vae_graph.h)
    using DT = backend::cuda_ops::DeviceTensor;
    const DT& W(const std::string& n) const;
    const DT* F(const std::string& n) const;

    Config cfg_;
    std::unordered_map<std::string, DT> w_;  // names relative to the VAE prefix ("decoder.conv_in.weight")
    mutable std::atomic<int64_t> calls_{0};
};

}  // namespace st2v::vae
