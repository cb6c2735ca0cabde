// The CPU backend of the networks' shared forward graphs (models/t2v/unet_graph.h, models/enhancer/vid2vid_graph.h):
// host tensors and ops::. Internal to models/. Its device twin is device_graph_ops.h.
#pragma once
#include <cstdint>
#include <vector>

#include "models/t2v/unet3d.h"
#include "ops/ops.h"
#include "runtime/schedules.h"

namespace st2v::t2v::detail {

struct CpuGraphOps {
    using Tensor = st2v::Tensor;
    static Tensor concat(const std::vector<Tensor>& xs, int dim) { return ops::concat(xs, dim); }
    static Tensor upsample_nearest(const Tensor& x, int64_t h, int64_t w) { return t2v::upsample_nearest(x, h, w); }
    // nearest x2, then rows 1 .. 2H-2 (the enhancer's Upsample: x[..., 1:-1, :])
    static Tensor upsample2x_crop_rows(const Tensor& x) {
        const Tensor u = ops::upsample_nearest2x(x);
        return u.slice(2, 1, u.size(2) - 1).contiguous();
    }
    static Tensor group_norm(const Tensor& x, int frames, int groups, const Tensor& g, const Tensor& b, float eps,
                             bool silu) {
        return ops::group_norm(x, frames, groups, g, b, eps, silu);
    }
    static void add_(Tensor& a, const Tensor& b) { ops::add_(a, b); }
    static Tensor silu(const Tensor& x) { return ops::silu(x); }
    static Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end) { return x.slice(dim, begin, end); }
    static Tensor video_to_frames(const Tensor& x) { return runtime::video_to_frames_first(x); }
    static Tensor frames_to_video(const Tensor& x, int64_t frames) {
        return runtime::frames_first_to_video(x, x.size(0) / frames);
    }
    static bool same_samples(const Tensor& x) { return samples_identical(x); }
    // the context as the model's forward prepared it (per sample, or repeated per frame: context_per_sample())
    static Tensor spatial(const SpatialTransformer& m, const Tensor& h, const Tensor& ctx, int) { return m(h, ctx); }
};

}  // namespace st2v::t2v::detail
