#include "models/vae/vae.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/threadpool.h"
#include "models/vae/vae_graph.h"
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

// The CPU backend of the shared graph (vae_graph.h).
struct CpuVae {
    using Tensor = st2v::Tensor;
    const AutoencoderKL& m;
    const Tensor& W(const std::string& n) const { return m.W(n); }
    const Tensor* F(const std::string& n) const { return m.F(n); }
    static Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const ops::Conv2dParams& p) {
        return ops::conv2d(x, w, b, p);
    }
    static Tensor group_norm(const Tensor& x, int groups, const Tensor& g, const Tensor& b, float eps, bool silu) {
        return ops::group_norm(x, 1, groups, g, b, eps, silu);
    }
    static void add_(Tensor& a, const Tensor& b) { ops::add_(a, b); }
    static Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) { return ops::linear(x, w, b); }
    static Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
        return ops::attention(q, k, v, heads, scale);
    }
    static Tensor to_tokens(const Tensor& h) {
        return h.reshape(Shape({h.size(0), h.size(1), h.size(2) * h.size(3)})).transpose(1, 2).contiguous();
    }
    static Tensor from_tokens(const Tensor& o, int64_t N, int64_t C, int64_t H, int64_t W) {
        return o.transpose(1, 2).contiguous().reshape(Shape({N, C, H, W}));
    }
    static Tensor upsample2x(const Tensor& h) { return ops::upsample_nearest2x(h); }
};

namespace {
using Graph = detail::VaeGraph<CpuVae>;
Graph graph_of(const AutoencoderKL& m) { return Graph{CpuVae{m}, m.config()}; }
Graph::Inter inter_sink(std::vector<std::pair<std::string, Tensor>>* inter) {
    return [inter](const std::string& n, const Tensor& t) { inter->emplace_back(n, t); };
}
}  // namespace

Tensor AutoencoderKL::conv(const Tensor& x, const std::string& name, int k, int stride, bool asym) const {
    return graph_of(*this).conv(x, name, k, stride, asym);
}
Tensor AutoencoderKL::gn(const Tensor& x, const std::string& name, bool silu) const {
    return graph_of(*this).gn(x, name, silu);
}
Tensor AutoencoderKL::resnet(const Tensor& x, const std::string& p) const { return graph_of(*this).resnet(x, p); }
Tensor AutoencoderKL::attn(const Tensor& x, const std::string& p) const { return graph_of(*this).attn(x, p); }
Tensor AutoencoderKL::mid(const Tensor& x, const std::string& p) const { return graph_of(*this).mid(x, p); }

Tensor AutoencoderKL::encoder(const Tensor& x, std::vector<std::pair<std::string, Tensor>>* inter) const {
    check_ndim(x, 4, "vae.encode", "x");
    const Graph g = graph_of(*this);
    g.check_image(x);
    const Graph::Inter sink = inter ? inter_sink(inter) : Graph::Inter();
    return g.encoder(x.contiguous(), inter ? &sink : nullptr);
}

Posterior posterior_from_moments(Tensor moments) {
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

Posterior AutoencoderKL::encode(const Tensor& x) const {
    Tensor h = encoder(x);
    return posterior_from_moments(conv(h, "quant_conv", 1));
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
    const Graph g = graph_of(*this);
    g.check_latent(z);
    const Graph::Inter sink = inter ? inter_sink(inter) : Graph::Inter();
    return g.decode(z.contiguous().to(DType::F32), inter ? &sink : nullptr);
}

// ---- exact banded decode / encode ---------------------------------------------------------------------------
namespace {
// Whole-image GroupNorm statistics of a [1, C, H, W] activation, accumulated band by band: per group, sums of
// (x - shift) and (x - shift)^2 in double, shift = the group's first element (row 0 comes first), as
// ops::group_norm computes them in one piece.
struct GStats {
    int64_t C = 0;
    int groups = 1;
    std::vector<double> s1, s2;
    std::vector<float> shift;
    double count = 0;  // elements per group so far
    GStats() = default;
    GStats(int64_t c, int g) : C(c), groups(g), s1(size_t(g), 0.0), s2(size_t(g), 0.0), shift(size_t(g), 0.f) {}

    void add(const Tensor& t) {  // t [1, C, R, W] contiguous f32, bands in row order starting at row 0
        const int64_t HW = t.size(2) * t.size(3), cpg = C / groups;
        if (HW == 0) return;
        const float* p = t.f32();
        if (count == 0)
            for (int g = 0; g < groups; ++g) shift[size_t(g)] = p[int64_t(g) * cpg * HW];
        parallel_for(groups, [&](int64_t g0, int64_t g1, int) {
            for (int64_t g = g0; g < g1; ++g) {
                const float sh = shift[size_t(g)];
                double t1 = 0, t2 = 0;
                for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
                    const float* x = p + c * HW;
                    for (int64_t b0 = 0; b0 < HW; b0 += 1024) {  // float lanes per block, blocks in double
                        const int64_t e = std::min<int64_t>(HW, b0 + 1024);
                        float a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                        int64_t i = b0;
                        for (; i + 8 <= e; i += 8)
                            for (int j = 0; j < 8; ++j) {
                                const float d = x[i + j] - sh;
                                a[j] += d;
                                q[j] += d * d;
                            }
                        for (; i < e; ++i) {
                            const float d = x[i] - sh;
                            a[0] += d;
                            q[0] += d * d;
                        }
                        for (int j = 0; j < 8; ++j) {
                            t1 += a[j];
                            t2 += q[j];
                        }
                    }
                }
                s1[size_t(g)] += t1;
                s2[size_t(g)] += t2;
            }
        });
        count += double(cpg * HW);
    }
};

// A GroupNorm with fixed (whole-image) statistics, applied in place to bands.
struct FixedNorm {
    int groups = 1;
    std::vector<float> mean, rstd, gamma, beta;
    FixedNorm(const GStats& st, const Tensor& g, const Tensor& b, float eps) : groups(st.groups) {
        ST2V_CHECK(st.count > 0, Code::kInternal, "vae.decode_tiled: GroupNorm statistics of an empty tensor");
        for (int i = 0; i < groups; ++i) {
            const double dm = st.s1[size_t(i)] / st.count;
            double var = st.s2[size_t(i)] / st.count - dm * dm;
            if (var < 0) var = 0;
            rstd.push_back(static_cast<float>(1.0 / std::sqrt(var + eps)));
            mean.push_back(static_cast<float>(st.shift[size_t(i)] + dm));
        }
        Tensor gc = g.contiguous().to(DType::F32), bc = b.contiguous().to(DType::F32);
        ST2V_CHECK(gc.numel() == st.C && bc.numel() == st.C, Code::kShapeMismatch,
                   "vae.decode_tiled: norm affine has %lld/%lld elements, want %lld", (long long)gc.numel(),
                   (long long)bc.numel(), (long long)st.C);
        gamma.assign(gc.f32(), gc.f32() + st.C);
        beta.assign(bc.f32(), bc.f32() + st.C);
    }
    void apply_(Tensor& t, bool silu) const {  // t [1, C, R, W] contiguous
        const int64_t C = t.size(1), HW = t.size(2) * t.size(3), cpg = C / groups;
        float* p = t.f32();
        parallel_for(C, [&](int64_t c0, int64_t c1, int) {
            for (int64_t c = c0; c < c1; ++c) {
                const size_t g = size_t(c / cpg);
                const float m = mean[g], a = rstd[g] * gamma[size_t(c)], b = beta[size_t(c)];
                float* x = p + c * HW;
                if (silu)
                    for (int64_t i = 0; i < HW; ++i) {
                        const float v = (x[i] - m) * a + b;
                        x[i] = v / (1.f + std::exp(-v));
                    }
                else
                    for (int64_t i = 0; i < HW; ++i) x[i] = (x[i] - m) * a + b;
            }
        });
    }
};

// A [1, C, H, W] activation stored as row chunks of `rows` rows; chunks can be freed once consumed.
struct Banded {
    int64_t C = 0, H = 0, W = 0, rows = 1;
    std::vector<Tensor> chunk;
    Banded() = default;
    Banded(int64_t c, int64_t h, int64_t w, int64_t r) : C(c), H(h), W(w), rows(std::max<int64_t>(1, r)) {
        chunk.resize(size_t((H + rows - 1) / rows));
    }
    // Stores rows [y0, y0 + t.rows) (y0 a multiple of `rows`; t may span several chunks).
    void put(int64_t y0, const Tensor& t) {
        const int64_t n = t.size(2);
        for (int64_t y = y0; y < y0 + n; y += rows) {
            const int64_t e = std::min({H, y + rows, y0 + n});
            if (y == y0 && e == y0 + n) {
                chunk[size_t(y / rows)] = t;  // whole band is one chunk
            } else {
                Tensor c = Tensor::empty(Shape({1, C, e - y, W}));
                c.copy_from(t.slice(2, y - y0, e - y0));
                chunk[size_t(y / rows)] = c;
            }
        }
    }
    // A new contiguous copy of rows [y0, y1) (callers modify it in place).
    Tensor read(int64_t y0, int64_t y1) const {
        Tensor out = Tensor::empty(Shape({1, C, y1 - y0, W}));
        for (int64_t y = y0; y < y1;) {
            const int64_t k = y / rows, cy0 = k * rows;
            const Tensor& c = chunk[size_t(k)];
            ST2V_CHECK(c.defined(), Code::kInternal, "vae.decode_tiled: row %lld read after it was released",
                       (long long)y);
            const int64_t e = std::min(y1, cy0 + c.size(2));
            out.slice(2, y - y0, e - y0).copy_from(c.slice(2, y - cy0, e - cy0));
            y = e;
        }
        return out;
    }
    void release_below(int64_t y) {  // rows < y will not be read again
        for (int64_t k = 0; (k + 1) * rows <= y && k < int64_t(chunk.size()); ++k) chunk[size_t(k)] = Tensor();
    }
};

// Rows of an activation on demand: either stored chunks or computed from stored chunks (the upsampler).
struct Src {
    int64_t C = 0, H = 0, W = 0;
    std::function<Tensor(int64_t, int64_t)> rows;  // new contiguous [1, C, y1 - y0, W]
    std::function<void(int64_t)> release;          // rows < y will not be requested again
};
}  // namespace

struct BandRunner {
    const AutoencoderKL& m;
    int64_t band;

    // Rows [y0, y1) of a "same" 3x3 convolution of an H-row map, from exactly its input rows
    // [max(0, y0 - 1), min(H, y1 + 1)) in `in`.
    Tensor conv_rows(const Tensor& in, int64_t H, int64_t y0, int64_t y1, const std::string& name) const {
        ST2V_CHECK(in.size(2) == std::min(H, y1 + 1) - std::max<int64_t>(0, y0 - 1), Code::kInternal,
                   "vae.decode_tiled: band rows mismatch for %s", name.c_str());
        ops::Conv2dParams p;
        p.pad_left = p.pad_right = 1;
        p.pad_top = y0 == 0 ? 1 : 0;
        p.pad_bottom = y1 == H ? 1 : 0;
        const Tensor* b = m.F(name + ".bias");
        return ops::conv2d(in, m.W(name + ".weight"), b ? *b : Tensor(), p);
    }
    FixedNorm norm(const GStats& st, const std::string& name) const {
        return FixedNorm(st, m.W(name + ".weight"), m.W(name + ".bias"), m.cfg_.eps);
    }

    static Src stored(Banded& b) {
        Src s{b.C, b.H, b.W, {}, {}};
        s.rows = [&b](int64_t y0, int64_t y1) { return b.read(y0, y1); };
        s.release = [&b](int64_t y) { b.release_below(y); };
        return s;
    }
    // conv(upsample_nearest2x(prev)) rows, computed from the rows of `prev` they depend on.
    Src upconv(Banded& prev, const std::string& name) const {
        Src s{m.W(name + ".weight").size(0), 2 * prev.H, 2 * prev.W, {}, {}};
        const int64_t H = s.H, W = s.W, C = prev.C;
        s.rows = [this, &prev, name, H, W, C](int64_t y0, int64_t y1) {
            const int64_t lo = std::max<int64_t>(0, y0 - 1), hi = std::min(H, y1 + 1);
            const int64_t a0 = lo / 2, a1 = (hi - 1) / 2 + 1;
            Tensor a = prev.read(a0, a1);
            Tensor u = Tensor::empty(Shape({1, C, hi - lo, W}));
            const int64_t aw = prev.W, ar = a1 - a0, R = hi - lo;
            const float* pa = a.f32();
            float* pu = u.f32();
            parallel_for(C * R, [&](int64_t i0, int64_t i1, int) {
                for (int64_t i = i0; i < i1; ++i) {
                    const int64_t c = i / R, r = i % R;
                    const float* src = pa + (c * ar + (lo + r) / 2 - a0) * aw;
                    float* dst = pu + i * W;
                    for (int64_t x = 0; x < aw; ++x) dst[2 * x] = dst[2 * x + 1] = src[x];
                }
            });
            a = Tensor();
            return conv_rows(u, H, y0, y1, name);
        };
        s.release = [&prev](int64_t y) { prev.release_below(std::max<int64_t>(0, y - 1) / 2); };
        return s;
    }
    GStats stats_of(const Src& x) const {
        GStats st(x.C, m.cfg_.groups);
        for (int64_t y0 = 0; y0 < x.H; y0 += band) st.add(x.rows(y0, std::min(x.H, y0 + band)));
        return st;
    }

    // ResnetBlock2D over bands; returns the output (stored) and its statistics in *st_out.
    Banded resnet(const Src& x, const GStats& st_x, const std::string& p, GStats* st_out) const {
        const int64_t H = x.H;
        const FixedNorm n1 = norm(st_x, p + ".norm1");
        const int64_t Co = m.W(p + ".conv1.weight").size(0);
        // Pass A: norm2 statistics of conv1's output.
        GStats st_h(Co, m.cfg_.groups);
        for (int64_t y0 = 0; y0 < H; y0 += band) {
            const int64_t y1 = std::min(H, y0 + band);
            Tensor xb = x.rows(std::max<int64_t>(0, y0 - 1), std::min(H, y1 + 1));
            n1.apply_(xb, true);
            Tensor h = conv_rows(xb, H, y0, y1, p + ".conv1");
            xb = Tensor();
            st_h.add(h);
        }
        const FixedNorm n2 = norm(st_h, p + ".norm2");
        // Pass B: recompute conv1 with one more row of halo, then conv2 + shortcut.
        Banded out(Co, H, x.W, band);
        *st_out = GStats(Co, m.cfg_.groups);
        const bool shortcut = m.F(p + ".conv_shortcut.weight") != nullptr;
        for (int64_t y0 = 0; y0 < H; y0 += band) {
            const int64_t y1 = std::min(H, y0 + band);
            const int64_t xa = std::max<int64_t>(0, y0 - 2), xe = std::min(H, y1 + 2);
            const int64_t ha = std::max<int64_t>(0, y0 - 1), he = std::min(H, y1 + 1);
            Tensor xb = x.rows(xa, xe);
            Tensor res = xb.slice(2, y0 - xa, y1 - xa).clone();  // a copy: xb is normalised in place below
            if (shortcut) res = m.conv(res, p + ".conv_shortcut", 1);
            n1.apply_(xb, true);
            Tensor h = conv_rows(xb, H, ha, he, p + ".conv1");
            xb = Tensor();
            n2.apply_(h, true);
            Tensor o = conv_rows(h, H, y0, y1, p + ".conv2");
            h = Tensor();
            ops::add_(o, res);
            res = Tensor();
            st_out->add(o);
            out.put(y0, o);
            x.release(y1 - 2);
        }
        return out;
    }

    // Rows of the encoder's Downsample2D conv (pad (0, 1, 0, 1), stride 2) of `prev` (even height).
    Src down(Banded& prev, const std::string& name) const {
        Src s{m.W(name + ".weight").size(0), prev.H / 2, prev.W / 2, {}, {}};
        const int64_t Hp = prev.H;
        s.rows = [this, &prev, name, Hp](int64_t y0, int64_t y1) {
            Tensor a = prev.read(2 * y0, std::min(Hp, 2 * y1 + 1));
            ops::Conv2dParams p;
            p.stride = 2;
            p.pad_right = 1;
            p.pad_bottom = 2 * y1 + 1 > Hp ? 1 : 0;
            const Tensor* b = m.F(name + ".bias");
            return ops::conv2d(a, m.W(name + ".weight"), b ? *b : Tensor(), p);
        };
        s.release = [&prev](int64_t y) { prev.release_below(2 * y); };
        return s;
    }

    // One sample x [1, in, H, W] (contiguous f32) -> quant_conv moments [1, 2*latent, H/f, W/f].
    Tensor encode_one(const Tensor& x) const {
        const int64_t H = x.size(2);
        Src img{m.W("encoder.conv_in.weight").size(0), H, x.size(3), {}, {}};
        img.rows = [this, &x, H](int64_t y0, int64_t y1) {
            Tensor t = x.slice(2, std::max<int64_t>(0, y0 - 1), std::min(H, y1 + 1)).contiguous();
            return conv_rows(t, H, y0, y1, "encoder.conv_in");
        };
        img.release = [](int64_t) {};
        Banded cur;
        GStats st;
        const size_t nb = m.cfg_.block_out.size();
        for (size_t i = 0; i < nb; ++i) {
            const std::string p = "encoder.down_blocks." + S((int64_t)i);
            for (int j = 0; j < m.cfg_.layers_per_block; ++j) {
                const Src x_src = j > 0 ? stored(cur)
                                  : i == 0 ? img
                                           : down(cur, "encoder.down_blocks." + S((int64_t)i - 1) + ".downsamplers.0.conv");
                const GStats st_x = j == 0 ? stats_of(x_src) : st;
                Banded next = resnet(x_src, st_x, p + ".resnets." + S(j), &st);
                cur = std::move(next);
            }
        }
        Tensor h = cur.read(0, cur.H);  // latent resolution: the rest runs untiled
        cur = Banded();
        h = m.mid(h, "encoder.mid_block");
        h = m.gn(h, "encoder.conv_norm_out", true);
        h = m.conv(h, "encoder.conv_out", 3);
        return m.conv(h, "quant_conv", 1);
    }

    // One sample z [1, latent, h, w] -> image [1, out, H, W].
    Tensor decode_one(const Tensor& z) const {
        Tensor h = m.conv(z, "post_quant_conv", 1);
        h = m.conv(h, "decoder.conv_in", 3);
        h = m.mid(h, "decoder.mid_block");
        Banded cur(h.size(1), h.size(2), h.size(3), band);
        GStats st(h.size(1), m.cfg_.groups);
        st.add(h);
        cur.put(0, h);
        h = Tensor();
        const size_t nb = m.cfg_.block_out.size();
        for (size_t i = 0; i < nb; ++i) {
            const std::string p = "decoder.up_blocks." + S((int64_t)i);
            for (int j = 0; j <= m.cfg_.layers_per_block; ++j) {
                const bool up = j == 0 && i > 0;
                const Src x = up ? upconv(cur, "decoder.up_blocks." + S((int64_t)i - 1) + ".upsamplers.0.conv")
                                 : stored(cur);
                const GStats st_x = up ? stats_of(x) : st;
                Banded next = resnet(x, st_x, p + ".resnets." + S(j), &st);
                cur = std::move(next);
            }
        }
        // conv_norm_out + conv_out, written as row chunks while `cur` is released (the image is assembled at the
        // end, when no activation is left).
        const FixedNorm nf = norm(st, "decoder.conv_norm_out");
        const int64_t H = cur.H;
        Banded img(m.cfg_.out_channels, H, cur.W, band);
        for (int64_t y0 = 0; y0 < H; y0 += band) {
            const int64_t y1 = std::min(H, y0 + band);
            Tensor xb = cur.read(std::max<int64_t>(0, y0 - 1), std::min(H, y1 + 1));
            nf.apply_(xb, true);
            Tensor o = conv_rows(xb, H, y0, y1, "decoder.conv_out");
            xb = Tensor();
            img.put(y0, o);
            cur.release_below(y1 - 1);
        }
        cur = Banded();
        return img.read(0, H);
    }
};

Tensor AutoencoderKL::decode_tiled(const Tensor& z, const TileOptions& o) const {
    check_ndim(z, 4, "vae.decode_tiled", "z");
    ST2V_CHECK(z.size(1) == cfg_.latent_channels, Code::kShapeMismatch,
               "vae.decode_tiled: z has %lld channels, want %lld", (long long)z.size(1), (long long)cfg_.latent_channels);
    ST2V_CHECK(z.size(2) > 0 && z.size(3) > 0, Code::kShapeMismatch, "vae.decode_tiled: empty latent %s",
               z.desc().c_str());
    ST2V_CHECK_ARG(o.band_rows >= 0, "vae.decode_tiled: band_rows %lld must be >= 0 (0 = auto)", (long long)o.band_rows);
    const int64_t N = z.size(0), f = factor(), H = z.size(2) * f, Wd = z.size(3) * f;
    const int64_t band = o.band_rows > 0 ? o.band_rows : std::max<int64_t>(8, (H + 47) / 48);
    Tensor zc = z.contiguous().to(DType::F32);
    BandRunner r{*this, band};
    if (N == 1) return r.decode_one(zc);
    Tensor out = Tensor::empty(Shape({N, cfg_.out_channels, H, Wd}));
    for (int64_t n = 0; n < N; ++n) out.slice(0, n, n + 1).copy_from(r.decode_one(zc.slice(0, n, n + 1)));
    return out;
}

Posterior AutoencoderKL::encode_tiled(const Tensor& x, const TileOptions& o) const {
    check_ndim(x, 4, "vae.encode_tiled", "x");
    ST2V_CHECK(x.size(1) == cfg_.in_channels, Code::kShapeMismatch, "vae.encode_tiled: x has %lld channels, want %lld",
               (long long)x.size(1), (long long)cfg_.in_channels);
    const int64_t f = factor(), N = x.size(0), H = x.size(2);
    ST2V_CHECK(x.size(2) % f == 0 && x.size(3) % f == 0 && x.size(2) > 0 && x.size(3) > 0, Code::kShapeMismatch,
               "vae.encode_tiled: H and W (%lld x %lld) must be positive multiples of %lld", (long long)x.size(2),
               (long long)x.size(3), (long long)f);
    ST2V_CHECK_ARG(o.band_rows >= 0, "vae.encode_tiled: band_rows %lld must be >= 0 (0 = auto)", (long long)o.band_rows);
    ST2V_CHECK(cfg_.layers_per_block >= 1, Code::kShapeMismatch, "vae.encode_tiled: needs >= 1 resnet per block");
    const int64_t band = o.band_rows > 0 ? o.band_rows : std::max<int64_t>(8, (H + 47) / 48);
    Tensor xc = x.contiguous().to(DType::F32);
    BandRunner r{*this, band};
    if (N == 1) return posterior_from_moments(r.encode_one(xc));
    Tensor moments;
    for (int64_t n = 0; n < N; ++n) {
        Tensor mo = r.encode_one(xc.slice(0, n, n + 1));
        if (!moments.defined()) moments = Tensor::empty(Shape({N, mo.size(1), mo.size(2), mo.size(3)}));
        moments.slice(0, n, n + 1).copy_from(mo);
    }
    return posterior_from_moments(moments);
}

}  // namespace st2v::vae
