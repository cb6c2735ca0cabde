#include "models/vae/vae.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"

namespace st2v::vae {

namespace {
std::string S(int64_t i) { return std::to_string(i); }
}  // namespace

const Tensor& AutoencoderKL::W(const std::string& n) const { return w_.get(prefix_ + n); }
const Tensor* AutoencoderKL::F(const std::string& n) const { return w_.find(prefix_ + n); }

AutoencoderKL::AutoencoderKL(const io::WeightStore& w, const std::string& prefix, int groups) : w_(w), prefix_(prefix) {
    ST2V_CHECK_ARG(groups >= 1, "vae: groups %d must be >= 1", groups);
    cfg_.groups = groups;
    // Block widths from encoder.down_blocks.{i}.resnets.0.conv1.weight; layers from resnets count.
    for (int i = 0;; ++i) {
        const Tensor* t = F("encoder.down_blocks." + S(i) + ".resnets.0.conv1.weight");
        if (!t) break;
        cfg_.block_out.push_back(t->size(0));
    }
    ST2V_CHECK(!cfg_.block_out.empty(), Code::kWeightsMissing,
               "vae: no encoder.down_blocks.0.resnets.0.conv1.weight under '%s' (not a VAE checkpoint?)", prefix.c_str());
    int l = 0;
    while (F("encoder.down_blocks.0.resnets." + S(l) + ".conv1.weight")) ++l;
    cfg_.layers_per_block = l;
    cfg_.in_channels = W("encoder.conv_in.weight").size(1);
    cfg_.out_channels = W("decoder.conv_out.weight").size(0);
    cfg_.latent_channels = W("post_quant_conv.weight").size(0);
    for (int64_t c : cfg_.block_out)
        ST2V_CHECK(c % groups == 0, Code::kShapeMismatch, "vae: width %lld is not a multiple of %d groups", (long long)c,
                   groups);
}

Tensor AutoencoderKL::conv(const Tensor& x, const std::string& name, int k, int stride, bool asym) const {
    ops::Conv2dParams p;
    if (asym) {
        p.stride = 2;
        p.pad_top = p.pad_left = 0;
        p.pad_bottom = p.pad_right = 1;
    } else {
        p = ops::Conv2dParams::same(k, stride);
    }
    const Tensor* b = F(name + ".bias");
    return ops::conv2d(x, W(name + ".weight"), b ? *b : Tensor(), p);
}

Tensor AutoencoderKL::gn(const Tensor& x, const std::string& name, bool silu) const {
    return ops::group_norm(x, 1, cfg_.groups, W(name + ".weight"), W(name + ".bias"), cfg_.eps, silu);
}

Tensor AutoencoderKL::resnet(const Tensor& x, const std::string& p) const {
    Tensor h = gn(x, p + ".norm1", true);
    h = conv(h, p + ".conv1", 3);
    h = gn(h, p + ".norm2", true);
    h = conv(h, p + ".conv2", 3);
    Tensor sc = F(p + ".conv_shortcut.weight") ? conv(x, p + ".conv_shortcut", 1) : x;
    ops::add_(h, sc);
    return h;
}

Tensor AutoencoderKL::attn(const Tensor& x, const std::string& p) const {
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), Wd = x.size(3);
    Tensor h = gn(x, p + ".group_norm", false);
    Tensor tok = h.reshape(Shape({N, C, H * Wd})).transpose(1, 2).contiguous();  // [N, HW, C]
    h = Tensor();
    Tensor q = ops::linear(tok, W(p + ".to_q.weight"), *F(p + ".to_q.bias"));
    Tensor k = ops::linear(tok, W(p + ".to_k.weight"), *F(p + ".to_k.bias"));
    Tensor v = ops::linear(tok, W(p + ".to_v.weight"), *F(p + ".to_v.bias"));
    tok = Tensor();
    Tensor o = ops::attention(q, k, v, 1, 1.f / std::sqrt(static_cast<float>(C)));
    q = k = v = Tensor();
    o = ops::linear(o, W(p + ".to_out.0.weight"), *F(p + ".to_out.0.bias"));
    Tensor out = o.transpose(1, 2).contiguous().reshape(Shape({N, C, H, Wd}));
    ops::add_(out, x);
    return out;
}

Tensor AutoencoderKL::mid(const Tensor& x, const std::string& p) const {
    Tensor h = resnet(x, p + ".resnets.0");
    h = attn(h, p + ".attentions.0");
    return resnet(h, p + ".resnets.1");
}

Tensor AutoencoderKL::encoder(const Tensor& x, std::vector<std::pair<std::string, Tensor>>* inter) const {
    check_ndim(x, 4, "vae.encode", "x");
    ST2V_CHECK(x.size(1) == cfg_.in_channels, Code::kShapeMismatch, "vae.encode: x has %lld channels, want %lld",
               (long long)x.size(1), (long long)cfg_.in_channels);
    const int64_t f = factor();
    ST2V_CHECK(x.size(2) % f == 0 && x.size(3) % f == 0, Code::kShapeMismatch,
               "vae.encode: H and W (%lld x %lld) must be multiples of %lld", (long long)x.size(2), (long long)x.size(3),
               (long long)f);
    Tensor h = conv(x.contiguous(), "encoder.conv_in", 3);
    const size_t nb = cfg_.block_out.size();
    for (size_t i = 0; i < nb; ++i) {
        const std::string p = "encoder.down_blocks." + S((int64_t)i);
        for (int j = 0; j < cfg_.layers_per_block; ++j) h = resnet(h, p + ".resnets." + S(j));
        if (i + 1 < nb) h = conv(h, p + ".downsamplers.0.conv", 3, 2, true);
        if (inter) inter->emplace_back("enc_down_block_" + S((int64_t)i), h);
    }
    h = mid(h, "encoder.mid_block");
    if (inter) inter->emplace_back("enc_mid_block", h);
    h = gn(h, "encoder.conv_norm_out", true);
    return conv(h, "encoder.conv_out", 3);
}

namespace {
Posterior posterior_of(Tensor moments) {
    Posterior p;
    const int64_t L = moments.size(1) / 2;
    p.moments = moments;
    p.mean = moments.slice(1, 0, L).contiguous();
    p.logvar = moments.slice(1, L, 2 * L).contiguous();
    p.std = Tensor::empty(p.logvar.shape());
    float* lv = p.logvar.f32();
    float* sd = p.std.f32();
    for (int64_t i = 0, n = p.logvar.numel(); i < n; ++i) {
        lv[i] = std::min(20.f, std::max(-30.f, lv[i]));
        sd[i] = std::exp(0.5f * lv[i]);
    }
    return p;
}
}  // namespace

Posterior AutoencoderKL::encode(const Tensor& x) const {
    Tensor h = encoder(x);
    return posterior_of(conv(h, "quant_conv", 1));
}

Tensor AutoencoderKL::sample(const Posterior& p, const Tensor& noise) {
    ST2V_CHECK(noise.shape() == p.mean.shape(), Code::kShapeMismatch, "vae.sample: noise %s, mean %s",
               noise.shape().str().c_str(), p.mean.shape().str().c_str());
    Tensor n = noise.contiguous().to(DType::F32);
    Tensor out = Tensor::empty(p.mean.shape());
    const float *m = p.mean.f32(), *s = p.std.f32(), *e = n.f32();
    float* o = out.f32();
    for (int64_t i = 0, c = out.numel(); i < c; ++i) o[i] = m[i] + s[i] * e[i];
    return out;
}

Tensor AutoencoderKL::decode(const Tensor& z, std::vector<std::pair<std::string, Tensor>>* inter) const {
    check_ndim(z, 4, "vae.decode", "z");
    ST2V_CHECK(z.size(1) == cfg_.latent_channels, Code::kShapeMismatch, "vae.decode: z has %lld channels, want %lld",
               (long long)z.size(1), (long long)cfg_.latent_channels);
    Tensor h = conv(z.contiguous().to(DType::F32), "post_quant_conv", 1);
    h = conv(h, "decoder.conv_in", 3);
    h = mid(h, "decoder.mid_block");
    if (inter) inter->emplace_back("dec_mid_block", h);
    const size_t nb = cfg_.block_out.size();
    for (size_t i = 0; i < nb; ++i) {
        const std::string p = "decoder.up_blocks." + S((int64_t)i);
        for (int j = 0; j <= cfg_.layers_per_block; ++j) h = resnet(h, p + ".resnets." + S(j));
        if (i + 1 < nb) {
            h = ops::upsample_nearest2x(h);
            h = conv(h, p + ".upsamplers.0.conv", 3);
        }
        if (inter) inter->emplace_back("dec_up_block_" + S((int64_t)i), h);
    }
    h = gn(h, "decoder.conv_norm_out", true);
    return conv(h, "decoder.conv_out", 3);
}

// ---- tiling ---------------------------------------------------------------------------------------------
namespace {
// b[..., y, :] = a[..., H_a - e + y, :] * (1 - y/e) + b[..., y, :] * (y/e) for y < e  (diffusers blend_v)
void blend_v(const Tensor& a, Tensor& b, int64_t e) {
    e = std::min({e, a.size(2), b.size(2)});
    const int64_t NC = b.size(0) * b.size(1), Wa = a.size(3), Wb = b.size(3), Ha = a.size(2), Hb = b.size(2);
    const int64_t Wm = std::min(Wa, Wb);
    const float* pa = a.f32();
    float* pb = b.f32();
    for (int64_t c = 0; c < NC; ++c)
        for (int64_t y = 0; y < e; ++y) {
            const float t = static_cast<float>(y) / static_cast<float>(e);
            const float* ra = pa + (c * Ha + Ha - e + y) * Wa;
            float* rb = pb + (c * Hb + y) * Wb;
            for (int64_t x = 0; x < Wm; ++x) rb[x] = ra[x] * (1.f - t) + rb[x] * t;
        }
}
void blend_h(const Tensor& a, Tensor& b, int64_t e) {
    e = std::min({e, a.size(3), b.size(3)});
    const int64_t NC = b.size(0) * b.size(1), Wa = a.size(3), Wb = b.size(3), Ha = a.size(2), Hb = b.size(2);
    const int64_t Hm = std::min(Ha, Hb);
    const float* pa = a.f32();
    float* pb = b.f32();
    for (int64_t c = 0; c < NC; ++c)
        for (int64_t y = 0; y < Hm; ++y) {
            const float* ra = pa + (c * Ha + y) * Wa;
            float* rb = pb + (c * Hb + y) * Wb;
            for (int64_t x = 0; x < e; ++x) {
                const float t = static_cast<float>(x) / static_cast<float>(e);
                rb[x] = ra[Wa - e + x] * (1.f - t) + rb[x] * t;
            }
        }
}

// Generic tiled driver: input tiles of `in_tile` with stride `in_step`, run `fn`, blend `blend` output
// pixels with the neighbour above/left, keep `limit` output pixels per tile, write into `out`.
template <class Fn>
Tensor run_tiled(const Tensor& x, int64_t in_tile, int64_t in_step, int64_t blend, int64_t limit, int64_t scale_num,
                 int64_t scale_den, Fn fn) {
    const int64_t H = x.size(2), Wd = x.size(3);
    std::vector<Tensor> prev_row, cur_row;
    Tensor out;
    const int64_t OH = H * scale_num / scale_den, OW = Wd * scale_num / scale_den;
    for (int64_t i = 0; i < H; i += in_step) {
        cur_row.clear();
        int64_t col = 0;
        for (int64_t j = 0; j < Wd; j += in_step, ++col) {
            Tensor tile = x.slice(2, i, std::min(H, i + in_tile)).slice(3, j, std::min(Wd, j + in_tile)).contiguous();
            Tensor y = fn(tile).contiguous();
            if (i > 0) blend_v(prev_row[static_cast<size_t>(col)], y, blend);
            if (j > 0) blend_h(cur_row.back(), y, blend);
            if (!out.defined()) out = Tensor::empty(Shape({y.size(0), y.size(1), OH, OW}));
            // Crop to limit and place at (i, j) * scale.
            const int64_t oy = i * scale_num / scale_den, ox = j * scale_num / scale_den;
            const int64_t h = std::min({limit, y.size(2), OH - oy}), w = std::min({limit, y.size(3), OW - ox});
            out.slice(2, oy, oy + h).slice(3, ox, ox + w).copy_from(y.slice(2, 0, h).slice(3, 0, w));
            cur_row.push_back(y);
        }
        prev_row.swap(cur_row);
    }
    return out;
}
}  // namespace

Tensor AutoencoderKL::decode_tiled(const Tensor& z, const TileOptions& o) const {
    check_ndim(z, 4, "vae.decode_tiled", "z");
    ST2V_CHECK(o.latent_tile >= 4 && o.overlap >= 0.f && o.overlap < 1.f, Code::kInvalidArgument,
               "vae.decode_tiled: latent_tile %lld must be >= 4 and overlap in [0, 1)", (long long)o.latent_tile);
    const int64_t f = factor();
    if (z.size(2) <= o.latent_tile && z.size(3) <= o.latent_tile) return decode(z);
    const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(o.latent_tile * (1.f - o.overlap)));
    const int64_t sample_tile = o.latent_tile * f;
    const int64_t blend = static_cast<int64_t>(sample_tile * o.overlap);
    const int64_t limit = step * f;  // = sample_tile - blend when the tile divides evenly
    Tensor zc = z.contiguous().to(DType::F32);
    return run_tiled(zc, o.latent_tile, step, blend, limit, f, 1, [&](const Tensor& t) { return decode(t); });
}

Posterior AutoencoderKL::encode_tiled(const Tensor& x, const TileOptions& o) const {
    check_ndim(x, 4, "vae.encode_tiled", "x");
    ST2V_CHECK(o.latent_tile >= 4 && o.overlap >= 0.f && o.overlap < 1.f, Code::kInvalidArgument,
               "vae.encode_tiled: latent_tile %lld must be >= 4 and overlap in [0, 1)", (long long)o.latent_tile);
    const int64_t f = factor();
    const int64_t sample_tile = o.latent_tile * f;
    if (x.size(2) <= sample_tile && x.size(3) <= sample_tile) return encode(x);
    const int64_t step = std::max<int64_t>(f, static_cast<int64_t>(sample_tile * (1.f - o.overlap)) / f * f);
    const int64_t blend = static_cast<int64_t>(o.latent_tile * o.overlap);
    const int64_t limit = step / f;
    Tensor xc = x.contiguous().to(DType::F32);
    Tensor moments = run_tiled(xc, sample_tile, step, blend, limit, 1, f,
                               [&](const Tensor& t) { return conv(encoder(t), "quant_conv", 1); });
    return posterior_of(moments);
}

}  // namespace st2v::vae
