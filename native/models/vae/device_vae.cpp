// Device encode / decode of the VAE. Read side by side with vae.cpp (AutoencoderKL::conv ... decode): the same steps
// in the same order, ops::X -> co::X, Tensor -> DeviceTensor.
#include "models/vae/device_vae.h"

#include <cmath>

#include "backend/backend.h"

namespace st2v::vae {

namespace co = backend::cuda_ops;
using co::DeviceTensor;

namespace {
std::string S(int64_t i) { return std::to_string(i); }
}  // namespace

DeviceAutoencoderKL::DeviceAutoencoderKL(const AutoencoderKL& cpu) : cfg_(cpu.config()) {
    (void)backend::cuda();  // ERR_NO_CUDA (naming what is missing) before any upload
    const std::string& pre = cpu.prefix();
    for (const std::string& n : cpu.weights().names_with_prefix(pre)) {
        const std::string rel = n.substr(pre.size());
        if (rel.rfind("encoder.", 0) != 0 && rel.rfind("decoder.", 0) != 0 && rel.rfind("quant_conv.", 0) != 0 &&
            rel.rfind("post_quant_conv.", 0) != 0)
            continue;
        w_.emplace(rel, DeviceTensor::from_host(cpu.weights().get(n)).to(DType::F32));
    }
}

const DeviceTensor& DeviceAutoencoderKL::W(const std::string& n) const {
    auto it = w_.find(n);
    ST2V_CHECK(it != w_.end(), Code::kWeightsMissing, "vae (cuda): no weight %s", n.c_str());
    return it->second;
}
const DeviceTensor* DeviceAutoencoderKL::F(const std::string& n) const {
    auto it = w_.find(n);
    return it == w_.end() ? nullptr : &it->second;
}

DeviceTensor DeviceAutoencoderKL::conv(const DeviceTensor& x, const std::string& name, int k, int stride, bool asym) const {
    ops::Conv2dParams p;
    if (asym) {
        p.stride = 2;
        p.pad_top = p.pad_left = 0;
        p.pad_bottom = p.pad_right = 1;
    } else {
        p = ops::Conv2dParams::same(k, stride);
    }
    const DeviceTensor* b = F(name + ".bias");
    return co::conv2d(x, W(name + ".weight"), b ? *b : DeviceTensor(), p);
}

DeviceTensor DeviceAutoencoderKL::gn(const DeviceTensor& x, const std::string& name, bool silu) const {
    return co::group_norm(x, 1, cfg_.groups, W(name + ".weight"), W(name + ".bias"), cfg_.eps, silu);
}

DeviceTensor DeviceAutoencoderKL::resnet(const DeviceTensor& x, const std::string& p) const {
    DeviceTensor h = gn(x, p + ".norm1", true);
    h = conv(h, p + ".conv1", 3);
    h = gn(h, p + ".norm2", true);
    h = conv(h, p + ".conv2", 3);
    DeviceTensor sc = F(p + ".conv_shortcut.weight") ? conv(x, p + ".conv_shortcut", 1) : x;
    co::add_(h, sc);
    return h;
}

DeviceTensor DeviceAutoencoderKL::attn(const DeviceTensor& x, const std::string& p) const {
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), Wd = x.size(3);
    DeviceTensor h = gn(x, p + ".group_norm", false);
    DeviceTensor tok = co::permute(h.reshape(Shape({N, C, H * Wd})), {0, 2, 1});  // [N, HW, C]
    h = DeviceTensor();
    DeviceTensor q = co::linear(tok, W(p + ".to_q.weight"), W(p + ".to_q.bias"));
    DeviceTensor k = co::linear(tok, W(p + ".to_k.weight"), W(p + ".to_k.bias"));
    DeviceTensor v = co::linear(tok, W(p + ".to_v.weight"), W(p + ".to_v.bias"));
    tok = DeviceTensor();
    DeviceTensor o = co::attention(q, k, v, 1, 1.f / std::sqrt(static_cast<float>(C)));
    q = k = v = DeviceTensor();
    o = co::linear(o, W(p + ".to_out.0.weight"), W(p + ".to_out.0.bias"));
    DeviceTensor out = co::permute(o, {0, 2, 1}).reshape(Shape({N, C, H, Wd}));
    co::add_(out, x);
    return out;
}

DeviceTensor DeviceAutoencoderKL::mid(const DeviceTensor& x, const std::string& p) const {
    DeviceTensor h = resnet(x, p + ".resnets.0");
    h = attn(h, p + ".attentions.0");
    return resnet(h, p + ".resnets.1");
}

DeviceTensor DeviceAutoencoderKL::encoder(const DeviceTensor& x) const {
    ST2V_CHECK(x.ndim() == 4, Code::kShapeMismatch, "vae.encode: x must be [N, C, H, W], got %s", x.shape().str().c_str());
    ST2V_CHECK(x.size(1) == cfg_.in_channels, Code::kShapeMismatch, "vae.encode: x has %lld channels, want %lld",
               (long long)x.size(1), (long long)cfg_.in_channels);
    const int64_t f = factor();
    ST2V_CHECK(x.size(2) % f == 0 && x.size(3) % f == 0, Code::kShapeMismatch,
               "vae.encode: H and W (%lld x %lld) must be multiples of %lld", (long long)x.size(2), (long long)x.size(3),
               (long long)f);
    ++calls_;
    DeviceTensor h = conv(x, "encoder.conv_in", 3);
    const size_t nb = cfg_.block_out.size();
    for (size_t i = 0; i < nb; ++i) {
        const std::string p = "encoder.down_blocks." + S((int64_t)i);
        for (int j = 0; j < cfg_.layers_per_block; ++j) h = resnet(h, p + ".resnets." + S(j));
        if (i + 1 < nb) h = conv(h, p + ".downsamplers.0.conv", 3, 2, true);
    }
    h = mid(h, "encoder.mid_block");
    h = gn(h, "encoder.conv_norm_out", true);
    return conv(h, "encoder.conv_out", 3);
}

DeviceTensor DeviceAutoencoderKL::decode(const DeviceTensor& z) const {
    ST2V_CHECK(z.ndim() == 4, Code::kShapeMismatch, "vae.decode: z must be [N, C, h, w], got %s", z.shape().str().c_str());
    ST2V_CHECK(z.size(1) == cfg_.latent_channels, Code::kShapeMismatch, "vae.decode: z has %lld channels, want %lld",
               (long long)z.size(1), (long long)cfg_.latent_channels);
    ++calls_;
    DeviceTensor h = conv(z, "post_quant_conv", 1);
    h = conv(h, "decoder.conv_in", 3);
    h = mid(h, "decoder.mid_block");
    const size_t nb = cfg_.block_out.size();
    for (size_t i = 0; i < nb; ++i) {
        const std::string p = "decoder.up_blocks." + S((int64_t)i);
        for (int j = 0; j <= cfg_.layers_per_block; ++j) h = resnet(h, p + ".resnets." + S(j));
        if (i + 1 < nb) {
            h = co::upsample_nearest(h, h.size(2) * 2, h.size(3) * 2);
            h = conv(h, p + ".upsamplers.0.conv", 3);
        }
    }
    h = gn(h, "decoder.conv_norm_out", true);
    return conv(h, "decoder.conv_out", 3);
}

Posterior DeviceAutoencoderKL::encode_host(const Tensor& x) const {
    check_ndim(x, 4, "vae.encode", "x");
    const int64_t N = x.size(0);
    Tensor moments;
    for (int64_t i = 0; i < N; ++i) {
        const DeviceTensor m = conv(encoder(DeviceTensor::from_host(x.slice(0, i, i + 1).to(DType::F32))), "quant_conv", 1);
        const Tensor mh = m.to_host();
        if (!moments.defined()) moments = Tensor::empty({N, mh.size(1), mh.size(2), mh.size(3)});
        std::copy(mh.f32(), mh.f32() + mh.numel(), moments.f32() + i * mh.numel());
    }
    return posterior_from_moments(moments);
}

Tensor DeviceAutoencoderKL::decode_host(const Tensor& z) const {
    check_ndim(z, 4, "vae.decode", "z");
    const int64_t N = z.size(0);
    Tensor out;
    for (int64_t i = 0; i < N; ++i) {
        const Tensor img = decode(DeviceTensor::from_host(z.slice(0, i, i + 1).to(DType::F32))).to_host();
        if (!out.defined()) out = Tensor::empty({N, img.size(1), img.size(2), img.size(3)});
        std::copy(img.f32(), img.f32() + img.numel(), out.f32() + i * img.numel());
    }
    return out;
}

}  // namespace st2v::vae
