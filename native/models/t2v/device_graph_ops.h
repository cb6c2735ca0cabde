// The CUDA backend of the networks' shared forward graphs (models/t2v/unet_graph.h, models/enhancer/vid2vid_graph.h):
// device tensors and backend::cuda_ops::. Internal to models/. Its CPU twin is graph_ops.h.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/cuda_ops.h"
#include "models/t2v/device_unet3d.h"

namespace st2v::t2v::detail {

struct DeviceGraphOps {
    using Tensor = backend::cuda_ops::DeviceTensor;
    static Tensor concat(const std::vector<Tensor>& xs, int dim) { return backend::cuda_ops::concat(xs, dim); }
    static Tensor upsample_nearest(const Tensor& x, int64_t h, int64_t w) {
        return backend::cuda_ops::upsample_nearest(x, h, w);
    }
    // nearest x2, then rows 1 .. 2H-2 (the enhancer's Upsample: x[..., 1:-1, :])
    static Tensor upsample2x_crop_rows(const Tensor& x) {
        const int64_t H2 = 2 * x.size(2), W2 = 2 * x.size(3);
        return backend::cuda_ops::slice(backend::cuda_ops::upsample_nearest(x, H2, W2), 2, 1, H2 - 1);
    }
    static Tensor group_norm(const Tensor& x, int frames, int groups, const Tensor& g, const Tensor& b, float eps,
                             bool silu) {
        return backend::cuda_ops::group_norm(x, frames, groups, g, b, eps, silu);
    }
    static void add_(Tensor& a, const Tensor& b) { backend::cuda_ops::add_(a, b); }
    static Tensor silu(const Tensor& x) { return backend::cuda_ops::silu(x); }
    static Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end) {
        return backend::cuda_ops::slice(x, dim, begin, end);
    }
    static Tensor video_to_frames(const Tensor& x) { return device::video_to_frames(x); }
    static Tensor frames_to_video(const Tensor& x, int64_t frames) { return device::frames_to_video(x, frames); }
    // compared on a host copy (one download of the latents per forward)
    static bool same_samples(const Tensor& x) { return samples_identical(x.to_host()); }
    // the context per sample [B, T, D] for h [B*F, ...] (device::Attention repeats its K / V per frame)
    static Tensor spatial(const device::SpatialTransformer& m, const Tensor& h, const Tensor& ctx, int F) {
        return m(h, ctx, F);
    }
};

}  // namespace st2v::t2v::detail
