// Device forward of the enhancer denoiser: the timestep embedding here, the rest vid2vid_graph.h's forward, shared with
// vid2vid_unet.cpp (its device backend: models/t2v/device_graph_ops.h).
#include "models/enhancer/device_vid2vid.h"

#include "backend/backend.h"
#include "models/enhancer/vid2vid_graph.h"
#include "models/t2v/blocks.h"
#include "models/t2v/device_graph_ops.h"

namespace st2v::enhancer {

namespace co = backend::cuda_ops;
using co::DeviceTensor;

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
    out.name = b.name;
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
        out.mods.push_back(std::move(d));
    }
    return out;
}

DeviceTensor DeviceVid2VidUNet::forward(const DeviceTensor& x, const std::vector<float>& t, const DeviceTensor& y) const {
    const std::vector<float> tb = cfg_.check_forward(x.shape(), y.shape(), t, "enhancer (cuda)");
    ST2V_CHECK(x.dtype() == DType::F32, Code::kDtype, "enhancer (cuda): x must be f32, got %s", dtype_name(x.dtype()));
    ++forwards_;
    const int frames = static_cast<int>(x.size(2));
    // the float32-pow table of unet_v2v.py on the host (a few hundred numbers), then the MLP on the device
    const DeviceTensor emb = DeviceTensor::from_host(sinusoidal_embedding(tb, static_cast<int>(te1_.w.size(1))));
    const DeviceTensor e = te2_(te1_(emb, co::Act::kSilu));                        // [B, E]
    const DeviceTensor temb_silu = co::repeat_interleave(co::silu(e), frames);      // [B*F, E]
    // the context per sample: the device Attention repeats K / V per frame (the CPU's context_per_sample way)
    return detail::Vid2VidGraph<t2v::detail::DeviceGraphOps>::forward(input_, middle_, output_, out_norm_, out_conv_, x,
                                                                      temb_silu, y, frames, "enhancer (cuda)", {});
}

Tensor DeviceVid2VidUNet::forward_host(const Tensor& x, const std::vector<float>& t, const Tensor& y) const {
    return forward(DeviceTensor::from_host(x.to(DType::F32)), t, DeviceTensor::from_host(y.to(DType::F32))).to_host();
}

}  // namespace st2v::enhancer
