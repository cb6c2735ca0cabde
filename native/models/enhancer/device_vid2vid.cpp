// Device forward of the enhancer denoiser. Read side by side with vid2vid_unet.cpp: the same steps in the same order,
// ops::X -> co::X, Tensor -> DeviceTensor.
#include "models/enhancer/device_vid2vid.h"

#include "backend/backend.h"
#include "models/t2v/blocks.h"

namespace st2v::enhancer {

namespace co = backend::cuda_ops;
using co::DeviceTensor;

using t2v::device::frames_to_video;
using t2v::device::video_to_frames;

DeviceVid2VidUNet::DeviceVid2VidUNet(const Vid2VidUNet& cpu, DType wdt) : cfg_(cpu.config()), wdt_(wdt) {
    ST2V_CHECK(wdt == DType::F32 || wdt == DType::BF16 || wdt == DType::F16, Code::kDtype,
               "enhancer (cuda): resident weight dtype must be f32, bf16 or f16, got %s", dtype_name(wdt));
    (void)backend::cuda();  // ERR_NO_CUDA (naming what is missing) before any upload
    te1_.upload(cpu.time_embed1(), wdt);
    te2_.upload(cpu.time_embed2(), wdt);
    for (const enhancer::Block& b : cpu.input_blocks()) input_.push_back(upload_block(b));
    middle_ = upload_block(cpu.middle_block());
    for (const enhancer::Block& b : cpu.output_blocks()) output_.push_back(upload_block(b));
    out_norm_.upload(cpu.out_norm());
    out_conv_.upload(cpu.out_conv(), wdt);
}

DeviceVid2VidUNet::Block DeviceVid2VidUNet::upload_block(const enhancer::Block& b) const {
    Block out;
    for (const enhancer::Module& m : b.mods) {
        Module d;
        d.kind = m.kind;
        switch (m.kind) {
            case enhancer::Module::kRes:
                d.res.upload(m.res, wdt_);
                d.tconv.upload(m.tconv, wdt_);
                break;
            case enhancer::Module::kSpatial: d.spatial.upload(m.spatial, wdt_); break;
            case enhancer::Module::kTemporal: d.temporal.upload(m.temporal, wdt_); break;
            case enhancer::Module::kConv:
            case enhancer::Module::kDown:
            case enhancer::Module::kUp: d.conv.upload(m.conv, wdt_); break;
        }
        out.push_back(std::move(d));
    }
    return out;
}

DeviceTensor DeviceVid2VidUNet::run_block(const Block& b, DeviceTensor h, const DeviceTensor& temb_silu,
                                          const DeviceTensor& ctx, int frames) const {
    for (const Module& m : b) {
        switch (m.kind) {
            case enhancer::Module::kRes:
                h = m.res(h, temb_silu);
                h = m.tconv(h, frames);
                break;
            case enhancer::Module::kSpatial: h = m.spatial(h, ctx, frames); break;
            case enhancer::Module::kTemporal: h = m.temporal(h, frames); break;
            case enhancer::Module::kConv:
            case enhancer::Module::kDown: h = m.conv(h); break;
            case enhancer::Module::kUp: {
                // Upsample: nearest x2, then x[..., 1:-1, :], then the 3x3 conv
                const int64_t H2 = 2 * h.size(2), W2 = 2 * h.size(3);
                const DeviceTensor u = co::slice(co::upsample_nearest(h, H2, W2), 2, 1, H2 - 1);
                h = m.conv(u);
                break;
            }
        }
    }
    return h;
}

DeviceTensor DeviceVid2VidUNet::forward(const DeviceTensor& x, const std::vector<float>& t, const DeviceTensor& y) const {
    const std::vector<float> tb = cfg_.check_forward(x.shape(), y.shape(), t, "enhancer (cuda)");
    ST2V_CHECK(x.dtype() == DType::F32, Code::kDtype, "enhancer (cuda): x must be f32, got %s", dtype_name(x.dtype()));
    ++forwards_;
    const int64_t F = x.size(2);
    const int frames = static_cast<int>(F);
    // the float32-pow table of unet_v2v.py on the host (a few hundred numbers), then the MLP on the device
    const DeviceTensor emb = DeviceTensor::from_host(sinusoidal_embedding(tb, static_cast<int>(te1_.w.size(1))));
    const DeviceTensor e = te2_(te1_(emb, co::Act::kSilu));                        // [B, E]
    const DeviceTensor temb_silu = co::repeat_interleave(co::silu(e), frames);      // [B*F, E]
    // the context per sample: the device Attention repeats K / V per frame (the CPU's context_per_sample way)
    DeviceTensor h = video_to_frames(x);
    std::vector<DeviceTensor> skips;
    for (const Block& b : input_) {
        h = run_block(b, h, temb_silu, y, frames);
        skips.push_back(h);
    }
    h = run_block(middle_, h, temb_silu, y, frames);
    for (const Block& b : output_) {
        DeviceTensor s = skips.back();
        skips.pop_back();
        ST2V_CHECK(s.size(2) == h.size(2) && s.size(3) == h.size(3), Code::kShapeMismatch,
                   "enhancer (cuda): features %s do not match the skip %s", h.shape().str().c_str(),
                   s.shape().str().c_str());
        h = run_block(b, co::concat({h, s}, 1), temb_silu, y, frames);
    }
    h = out_conv_(co::group_norm(h, 1, 32, out_norm_.w, out_norm_.b, 1e-5f, /*silu=*/true));
    return frames_to_video(h, F);
}

Tensor DeviceVid2VidUNet::forward_host(const Tensor& x, const std::vector<float>& t, const Tensor& y) const {
    return forward(DeviceTensor::from_host(x.to(DType::F32)), t, DeviceTensor::from_host(y.to(DType::F32))).to_host();
}

}  // namespace st2v::enhancer
