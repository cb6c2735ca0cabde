// Device encode / decode of the VAE: the graph of vae_graph.h (the one the CPU runs) over backend::cuda_ops.
#include "models/vae/device_vae.h"

#include <cmath>

#include "backend/backend.h"
#include "models/vae/vae_graph.h"

namespace st2v::vae {

namespace co = backend::cuda_ops;
using co::DeviceTensor;

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

// The CUDA backend of the shared graph (vae_graph.h).
struct DeviceVaeOps {
    using Tensor = DeviceTensor;
    const DeviceAutoencoderKL& m;
    const DeviceTensor& W(const std::string& n) const { return m.W(n); }
    const DeviceTensor* F(const std::string& n) const { return m.F(n); }
    static DeviceTensor conv2d(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b, const ops::Conv2dParams& p) {
        return co::conv2d(x, w, b, p);
    }
    static DeviceTensor group_norm(const DeviceTensor& x, int groups, const DeviceTensor& g, const DeviceTensor& b, float eps,
                                   bool silu) {
        return co::group_norm(x, 1, groups, g, b, eps, silu);
    }
    static void add_(DeviceTensor& a, const DeviceTensor& b) { co::add_(a, b); }
    static DeviceTensor linear(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b) { return co::linear(x, w, b); }
    static DeviceTensor attention(const DeviceTensor& q, const DeviceTensor& k, const DeviceTensor& v, int heads, float scale) {
        return co::attention(q, k, v, heads, scale);
    }
    static DeviceTensor to_tokens(const DeviceTensor& h) {
        return co::permute(h.reshape(Shape({h.size(0), h.size(1), h.size(2) * h.size(3)})), {0, 2, 1});
    }
    static DeviceTensor from_tokens(const DeviceTensor& o, int64_t N, int64_t C, int64_t H, int64_t W) {
        return co::permute(o, {0, 2, 1}).reshape(Shape({N, C, H, W}));
    }
    static DeviceTensor upsample2x(const DeviceTensor& h) { return co::upsample_nearest(h, h.size(2) * 2, h.size(3) * 2); }
};

namespace {
using Graph = detail::VaeGraph<DeviceVaeOps>;
Graph graph_of(const DeviceAutoencoderKL& m) { return Graph{DeviceVaeOps{m}, m.config()}; }

// f on each sample of x [N, ...] (uploaded alone, in its stored dtype), the N host results stacked along dim 0.
template <class Fn>
Tensor per_sample(const Tensor& x, Fn&& f) {
    ST2V_CHECK_ARG(x.size(0) >= 1, "vae (cuda): empty batch %s", x.shape().str().c_str());
    Tensor out;
    for (int64_t i = 0, N = x.size(0); i < N; ++i) {
        const Tensor r = f(DeviceTensor::from_host(x.slice(0, i, i + 1))).to_host();
        if (!out.defined()) out = Tensor::empty({N, r.size(1), r.size(2), r.size(3)});
        std::copy(r.f32(), r.f32() + r.numel(), out.f32() + i * r.numel());
    }
    return out;
}
}  // namespace

DeviceTensor DeviceAutoencoderKL::encoder(const DeviceTensor& x) const {
    const Graph g = graph_of(*this);
    g.check_image(x);
    ++calls_;
    return g.encoder(x.to(DType::F32));
}

DeviceTensor DeviceAutoencoderKL::decode(const DeviceTensor& z) const {
    const Graph g = graph_of(*this);
    g.check_latent(z);
    ++calls_;
    return g.decode(z.to(DType::F32));
}

Posterior DeviceAutoencoderKL::encode_host(const Tensor& x) const {
    check_ndim(x, 4, "vae.encode", "x");
    return posterior_from_moments(
        per_sample(x, [&](const DeviceTensor& xi) { return graph_of(*this).conv(encoder(xi), "quant_conv", 1); }));
}

Tensor DeviceAutoencoderKL::decode_host(const Tensor& z) const {
    check_ndim(z, 4, "vae.decode", "z");
    return per_sample(z, [&](const DeviceTensor& zi) { return decode(zi); });
}

}  // namespace st2v::vae
