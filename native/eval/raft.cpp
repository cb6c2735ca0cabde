// RAFT (torchvision structure) on the CPU — see raft.h.
#include "eval/raft.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/status.h"
#include "core/threadpool.h"
#include "ops/ops.h"

namespace st2v::eval {

namespace {

using Conv = RaftModel::Conv;
using ConvNorm = RaftModel::ConvNorm;

struct Map {  // C x H x W, f32
    int c = 0, h = 0, w = 0;
    std::vector<float> d;
    Map() = default;
    Map(int c_, int h_, int w_) : c(c_), h(h_), w(w_), d((size_t)c_ * h_ * w_) {}
    float* ch(int i) { return d.data() + (size_t)i * h * w; }
    const float* ch(int i) const { return d.data() + (size_t)i * h * w; }
};

std::vector<float> f32_of(const Tensor& t) {
    Tensor c = t.to(DType::F32);
    return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

Conv load_conv(const io::WeightStore& ws, const std::string& name, int stride, int ph, int pw, bool bias = true) {
    const Tensor& w = ws.get(name + ".weight");
    ST2V_CHECK(w.ndim() == 4, Code::kShapeMismatch, "RAFT weight %s.weight: expected 4 dims, got %s", name.c_str(),
               w.desc().c_str());
    Conv c;
    c.cout = (int)w.size(0);
    c.cin = (int)w.size(1);
    c.kh = (int)w.size(2);
    c.kw = (int)w.size(3);
    c.stride = stride;
    c.ph = ph;
    c.pw = pw;
    c.w = f32_of(w);
    if (bias) {
        const Tensor& b = ws.get(name + ".bias");
        ST2V_CHECK(b.numel() == c.cout, Code::kShapeMismatch, "RAFT weight %s.bias: expected %d values", name.c_str(),
                   c.cout);
        c.b = f32_of(b);
    } else {
        c.b.assign(c.cout, 0.f);
    }
    c.wt = Tensor::from_data(c.w.data(), Shape({(int64_t)c.cout, (int64_t)c.cin, (int64_t)c.kh, (int64_t)c.kw}), DType::F32);
    c.bt = Tensor::from_data(c.b.data(), Shape({(int64_t)c.cout}), DType::F32);
    return c;
}

// Conv2dNormActivation: conv (+ norm when its parameters exist or the encoder uses InstanceNorm).
ConvNorm load_convnorm(const io::WeightStore& ws, const std::string& name, int stride, bool batch_norm) {
    ConvNorm cn;
    const Tensor& w = ws.get(name + ".0.weight");
    const int k = (int)w.size(2);
    cn.conv = load_conv(ws, name + ".0", stride, (k - 1) / 2, (k - 1) / 2);
    cn.norm.batch = batch_norm;
    if (batch_norm) {
        const auto g = f32_of(ws.get(name + ".1.weight")), b = f32_of(ws.get(name + ".1.bias"));
        const auto m = f32_of(ws.get(name + ".1.running_mean")), v = f32_of(ws.get(name + ".1.running_var"));
        ST2V_CHECK((int)g.size() == cn.conv.cout && b.size() == g.size() && m.size() == g.size() && v.size() == g.size(),
                   Code::kShapeMismatch, "RAFT weight %s.1: BatchNorm size mismatch", name.c_str());
        for (int i = 0; i < cn.conv.cout; ++i) {
            // torch: (x - mean) / sqrt(var + eps) * weight + bias
            const float inv = 1.f / std::sqrt(v[i] + 1e-5f);
            cn.norm.scale.push_back(inv * g[i]);
            cn.norm.shift.push_back(b[i] - m[i] * inv * g[i]);
        }
    }
    return cn;
}

RaftModel::Encoder load_encoder(const io::WeightStore& ws, const std::string& p) {
    const bool bn = ws.has(p + ".convnormrelu.1.running_mean");
    RaftModel::Encoder e;
    e.stem = load_convnorm(ws, p + ".convnormrelu", 2, bn);
    const int strides[3] = {1, 2, 2};
    for (int l = 0; l < 3; ++l)
        for (int j = 0; j < 2; ++j) {
            const std::string b = p + ".layer" + std::to_string(l + 1) + "." + std::to_string(j);
            const int s = j == 0 ? strides[l] : 1;
            RaftModel::Block& blk = e.blocks[2 * l + j];
            blk.c1 = load_convnorm(ws, b + ".convnormrelu1", s, bn);
            blk.c2 = load_convnorm(ws, b + ".convnormrelu2", 1, bn);
            blk.has_down = ws.has(b + ".downsample.0.weight");
            ST2V_CHECK(blk.has_down == (s != 1), Code::kShapeMismatch,
                       "RAFT weights %s: downsample projection %s for stride %d", b.c_str(),
                       blk.has_down ? "present" : "missing", s);
            if (blk.has_down) blk.down = load_convnorm(ws, b + ".downsample", s, bn);
        }
    e.out = load_conv(ws, p + ".conv", 1, 0, 0);
    return e;
}

// y = conv(x) via im2col + GEMM on the current pool.
Map conv(const Map& x, const Conv& c) {
    ST2V_CHECK(x.c == c.cin, Code::kShapeMismatch, "RAFT conv: %d input channels, weights expect %d", x.c, c.cin);
    const int ho = (x.h + 2 * c.ph - c.kh) / c.stride + 1, wo = (x.w + 2 * c.pw - c.kw) / c.stride + 1;
    if (c.kh == c.kw && (c.kh == 1 || c.kh == 3) && c.ph == c.kh / 2 && c.pw == c.kw / 2) {
        // The engine's implicit-GEMM convolution (no im2col buffer).
        Tensor xt = Tensor::borrow(const_cast<float*>(x.d.data()), Shape({1, (int64_t)x.c, (int64_t)x.h, (int64_t)x.w}),
                                   DType::F32, nullptr);
        ops::Conv2dParams p = ops::Conv2dParams::same(c.kh, c.stride);
        Tensor yt = ops::conv2d(xt, c.wt, c.bt, p);
        Map y((int)yt.size(1), (int)yt.size(2), (int)yt.size(3));
        ST2V_CHECK(y.h == ho && y.w == wo, Code::kInternal, "RAFT conv: unexpected output size");
        std::memcpy(y.d.data(), yt.raw(), y.d.size() * sizeof(float));
        return y;
    }
    Map y(c.cout, ho, wo);
    const int64_t K = (int64_t)c.cin * c.kh * c.kw, N = (int64_t)ho * wo;
    const bool direct = c.kh == 1 && c.kw == 1 && c.stride == 1 && c.ph == 0 && c.pw == 0;
    std::vector<float> col;
    const float* B = x.d.data();
    if (!direct) {
        col.assign((size_t)(K * N), 0.f);
        parallel_for(K, [&](int64_t b, int64_t e, int) {
            for (int64_t k = b; k < e; ++k) {
                const int ci = (int)(k / (c.kh * c.kw)), r = (int)(k % (c.kh * c.kw)), ky = r / c.kw, kx = r % c.kw;
                const float* src = x.ch(ci);
                float* dst = col.data() + k * N;
                for (int oy = 0; oy < ho; ++oy) {
                    const int iy = oy * c.stride - c.ph + ky;
                    if (iy < 0 || iy >= x.h) continue;
                    for (int ox = 0; ox < wo; ++ox) {
                        const int ix = ox * c.stride - c.pw + kx;
                        if (ix >= 0 && ix < x.w) dst[(size_t)oy * wo + ox] = src[(size_t)iy * x.w + ix];
                    }
                }
            }
        });
        B = col.data();
    }
    ops::GemmEpilogue ep;
    ep.bias_row = c.b.data();
    ops::gemm(c.cout, N, K, ops::MatRef{c.w.data(), DType::F32, K, 1}, ops::MatRef{B, DType::F32, N, 1}, y.d.data(), N,
              ep);
    return y;
}

void relu_(Map& x) {
    for (float& v : x.d) v = v > 0.f ? v : 0.f;
}

void norm_(Map& x, const RaftModel::Norm& n) {
    const size_t hw = (size_t)x.h * x.w;
    parallel_for(x.c, [&](int64_t b, int64_t e, int) {
        for (int64_t ci = b; ci < e; ++ci) {
            float* p = x.ch((int)ci);
            if (n.batch) {
                const float s = n.scale[ci], t = n.shift[ci];
                for (size_t i = 0; i < hw; ++i) p[i] = p[i] * s + t;
            } else {
                double m = 0, v = 0;
                for (size_t i = 0; i < hw; ++i) m += p[i];
                m /= (double)hw;
                for (size_t i = 0; i < hw; ++i) v += (p[i] - m) * (p[i] - m);
                v /= (double)hw;  // biased, as InstanceNorm2d
                const float inv = (float)(1.0 / std::sqrt(v + 1e-5)), mf = (float)m;
                for (size_t i = 0; i < hw; ++i) p[i] = (p[i] - mf) * inv;
            }
        }
    });
}

Map convnorm(const Map& x, const ConvNorm& cn, bool relu) {
    Map y = conv(x, cn.conv);
    norm_(y, cn.norm);
    if (relu) relu_(y);
    return y;
}

Map encode(const Map& x, const RaftModel::Encoder& e) {
    Map y = convnorm(x, e.stem, true);
    for (const auto& blk : e.blocks) {
        Map a = convnorm(y, blk.c1, true);
        a = convnorm(a, blk.c2, true);
        Map s = blk.has_down ? convnorm(y, blk.down, false) : std::move(y);
        for (size_t i = 0; i < a.d.size(); ++i) a.d[i] = std::max(0.f, a.d[i] + s.d[i]);
        y = std::move(a);
    }
    return conv(y, e.out);
}

Map cat(const Map& a, const Map& b) {
    Map y(a.c + b.c, a.h, a.w);
    std::memcpy(y.d.data(), a.d.data(), a.d.size() * sizeof(float));
    std::memcpy(y.d.data() + a.d.size(), b.d.data(), b.d.size() * sizeof(float));
    return y;
}

float sigmoid(float v) { return 1.f / (1.f + std::exp(-v)); }

void gru(Map& h, const Map& x, const RaftModel::Gru& g) {
    const Map hx = cat(h, x);
    Map z = conv(hx, g.z), r = conv(hx, g.r);
    for (float& v : z.d) v = sigmoid(v);
    for (size_t i = 0; i < r.d.size(); ++i) r.d[i] = sigmoid(r.d[i]) * h.d[i];
    Map q = conv(cat(r, x), g.q);
    for (size_t i = 0; i < h.d.size(); ++i) h.d[i] = (1.f - z.d[i]) * h.d[i] + z.d[i] * std::tanh(q.d[i]);
}

// Bilinear sample of an (h x w) plane at absolute (x, y), zero outside (grid_sample, align_corners=True).
inline float sample_zero(const float* p, int h, int w, float x, float y) {
    const float fx0 = std::floor(x), fy0 = std::floor(y);
    const int x0 = (int)fx0, y0 = (int)fy0;
    const float ax = x - fx0, ay = y - fy0;
    float s = 0.f;
    auto at = [&](int yy, int xx) { return (xx >= 0 && xx < w && yy >= 0 && yy < h) ? p[(size_t)yy * w + xx] : 0.f; };
    s += (1 - ax) * (1 - ay) * at(y0, x0);
    s += ax * (1 - ay) * at(y0, x0 + 1);
    s += (1 - ax) * ay * at(y0 + 1, x0);
    s += ax * ay * at(y0 + 1, x0 + 1);
    return s;
}

}  // namespace

std::shared_ptr<RaftModel> RaftModel::from_weights(const io::WeightStore& ws_in) {
    io::WeightStore ws = ws_in.has("raft.feature_encoder.conv.weight") ? ws_in.sub("raft.") : ws_in;
    auto m = std::make_shared<RaftModel>();
    m->fnet_ = load_encoder(ws, "feature_encoder");
    m->cnet_ = load_encoder(ws, "context_encoder");
    const std::string me = "update_block.motion_encoder.";
    auto c3 = [&](const std::string& n, int k) { return load_conv(ws, n, 1, (k - 1) / 2, (k - 1) / 2); };
    m->corr1_ = c3(me + "convcorr1.0", (int)ws.get(me + "convcorr1.0.weight").size(2));
    m->corr2_ = c3(me + "convcorr2.0", (int)ws.get(me + "convcorr2.0.weight").size(2));
    m->flow1_ = c3(me + "convflow1.0", (int)ws.get(me + "convflow1.0.weight").size(2));
    m->flow2_ = c3(me + "convflow2.0", (int)ws.get(me + "convflow2.0.weight").size(2));
    m->menc_ = c3(me + "conv.0", (int)ws.get(me + "conv.0.weight").size(2));
    const std::string rb = "update_block.recurrent_block.";
    for (int i = 0; i < 2; ++i) {
        Gru& g = i == 0 ? m->gru1_ : m->gru2_;
        const std::string p = rb + "convgru" + std::to_string(i + 1) + ".";
        const Tensor& w = ws.get(p + "convz.weight");
        const int kh = (int)w.size(2), kw = (int)w.size(3);
        g.z = load_conv(ws, p + "convz", 1, kh / 2, kw / 2);
        g.r = load_conv(ws, p + "convr", 1, kh / 2, kw / 2);
        g.q = load_conv(ws, p + "convq", 1, kh / 2, kw / 2);
    }
    m->head1_ = c3("update_block.flow_head.conv1", 3);
    m->head2_ = c3("update_block.flow_head.conv2", 3);
    m->mask1_ = c3("mask_predictor.convrelu.0", 3);
    m->mask2_ = load_conv(ws, "mask_predictor.conv", 1, 0, 0);
    m->hidden_ = m->gru1_.z.cout;
    const int ctx = m->cnet_.out.cout - m->hidden_;
    ST2V_CHECK(ctx > 0, Code::kShapeMismatch, "RAFT weights: context encoder has %d channels, hidden state %d",
               m->cnet_.out.cout, m->hidden_);
    ST2V_CHECK(m->corr1_.cin == m->levels_ * (2 * m->radius_ + 1) * (2 * m->radius_ + 1), Code::kShapeMismatch,
               "RAFT weights: convcorr1 expects %d channels; only 4 levels x radius 4 (324) is supported",
               m->corr1_.cin);
    ST2V_CHECK(m->gru1_.z.cin == m->hidden_ + ctx + m->menc_.cout + 2, Code::kShapeMismatch,
               "RAFT weights: recurrent block input size mismatch");
    ST2V_CHECK(m->mask2_.cout == 8 * 8 * 9 && m->head2_.cout == 2, Code::kShapeMismatch,
               "RAFT weights: mask predictor must output 576 channels and the flow head 2");
    return m;
}

std::shared_ptr<RaftModel> RaftModel::load(const std::string& path) { return from_weights(io::load_safetensors(path)); }

void RaftModel::flow(const uint8_t* rgb0, const uint8_t* rgb1, int W, int H, float* out, int updates) const {
    ST2V_CHECK_ARG(W % 8 == 0 && H % 8 == 0 && W >= 128 && H >= 128,
                   "RAFT needs frame sides that are multiples of 8 and >= 128 (got %dx%d)", W, H);
    ST2V_CHECK_ARG(updates >= 1 && updates <= 100, "RAFT updates must be in 1..100");
    auto prep = [&](const uint8_t* rgb) {
        Map m(3, H, W);
        for (int c = 0; c < 3; ++c)
            for (int64_t i = 0; i < (int64_t)H * W; ++i) m.ch(c)[i] = ((float)rgb[3 * i + c] / 255.f - 0.5f) / 0.5f;
        return m;
    };
    const Map im0 = prep(rgb0), im1 = prep(rgb1);
    const Map f1 = encode(im0, fnet_), f2 = encode(im1, fnet_);
    const int h = f1.h, w = f1.w, C = f1.c;
    const int64_t hw = (int64_t)h * w;
    // Correlation pyramid: level 0 [hw, h, w] = f1^T f2 / sqrt(C), then 2x2 average pooling of each slice.
    std::vector<Map> pyr;
    {
        Map c0((int)hw, h, w);
        ops::GemmEpilogue ep;
        ep.alpha = 1.f / std::sqrt((float)C);
        ops::gemm(hw, hw, C, ops::MatRef{f1.d.data(), DType::F32, 1, hw}, ops::MatRef{f2.d.data(), DType::F32, hw, 1},
                  c0.d.data(), hw, ep);
        pyr.push_back(std::move(c0));
        for (int l = 1; l < levels_; ++l) {
            const Map& p = pyr.back();
            Map q((int)hw, p.h / 2, p.w / 2);
            for (int64_t s = 0; s < hw; ++s) {
                const float* a = p.ch((int)s);
                float* o = q.ch((int)s);
                for (int y = 0; y < q.h; ++y)
                    for (int x = 0; x < q.w; ++x)
                        o[y * q.w + x] = (a[2 * y * p.w + 2 * x] + a[2 * y * p.w + 2 * x + 1] + a[(2 * y + 1) * p.w + 2 * x] +
                                          a[(2 * y + 1) * p.w + 2 * x + 1]) / 4.f;
            }
            pyr.push_back(std::move(q));
        }
    }
    Map ctx = encode(im0, cnet_);
    Map hid(hidden_, h, w), context(ctx.c - hidden_, h, w);
    for (size_t i = 0; i < hid.d.size(); ++i) hid.d[i] = std::tanh(ctx.d[i]);
    for (size_t i = 0; i < context.d.size(); ++i) context.d[i] = std::max(0.f, ctx.d[hid.d.size() + i]);
    Map coords(2, h, w);  // coords1 - coords0 = flow at 1/8 resolution
    const int side = 2 * radius_ + 1, per_level = side * side;
    for (int it = 0; it < updates; ++it) {
        Map corr(levels_ * per_level, h, w);
        parallel_for(hw, [&](int64_t b, int64_t e, int) {
            for (int64_t p = b; p < e; ++p) {
                const int y = (int)(p / w), x = (int)(p % w);
                float cx = (float)x + coords.ch(0)[p], cy = (float)y + coords.ch(1)[p];
                for (int l = 0; l < levels_; ++l) {
                    const Map& pl = pyr[l];
                    const float* plane = pl.ch((int)p);
                    for (int a = 0; a < side; ++a)      // torchvision: first grid axis offsets x
                        for (int bb = 0; bb < side; ++bb)  // second grid axis offsets y
                            corr.ch(l * per_level + a * side + bb)[p] =
                                sample_zero(plane, pl.h, pl.w, cx + (float)(a - radius_), cy + (float)(bb - radius_));
                    cx /= 2.f;
                    cy /= 2.f;
                }
            }
        });
        // Motion encoder.
        Map c = conv(corr, corr1_);
        relu_(c);
        c = conv(c, corr2_);
        relu_(c);
        Map f = conv(coords, flow1_);
        relu_(f);
        f = conv(f, flow2_);
        relu_(f);
        Map mf = conv(cat(c, f), menc_);
        relu_(mf);
        const Map x = cat(context, cat(mf, coords));
        gru(hid, x, gru1_);
        gru(hid, x, gru2_);
        Map d = conv(hid, head1_);
        relu_(d);
        d = conv(d, head2_);
        for (size_t i = 0; i < coords.d.size(); ++i) coords.d[i] += d.d[i];
    }
    // Convex upsampling with the mask of the final hidden state.
    Map mk = conv(hid, mask1_);
    relu_(mk);
    mk = conv(mk, mask2_);
    parallel_for(hw, [&](int64_t b, int64_t e, int) {
        for (int64_t p = b; p < e; ++p) {
            const int y = (int)(p / w), x = (int)(p % w);
            float nb[2][9];
            for (int k = 0; k < 9; ++k) {
                const int yy = y + k / 3 - 1, xx = x + k % 3 - 1;
                const bool in = yy >= 0 && yy < h && xx >= 0 && xx < w;
                nb[0][k] = in ? 8.f * coords.ch(0)[(size_t)yy * w + xx] : 0.f;
                nb[1][k] = in ? 8.f * coords.ch(1)[(size_t)yy * w + xx] : 0.f;
            }
            for (int i = 0; i < 8; ++i)
                for (int j = 0; j < 8; ++j) {
                    float m[9], mx = -INFINITY;
                    for (int k = 0; k < 9; ++k) {
                        m[k] = 0.25f * mk.ch(k * 64 + i * 8 + j)[p];
                        mx = std::max(mx, m[k]);
                    }
                    float sum = 0;
                    for (int k = 0; k < 9; ++k) sum += (m[k] = std::exp(m[k] - mx));
                    float u = 0, v = 0;
                    for (int k = 0; k < 9; ++k) {
                        u += m[k] * nb[0][k];
                        v += m[k] * nb[1][k];
                    }
                    const size_t o = (size_t)(y * 8 + i) * W + (x * 8 + j);
                    out[o] = u / sum;
                    out[(size_t)H * W + o] = v / sum;
                }
        }
    });
}

}  // namespace st2v::eval
