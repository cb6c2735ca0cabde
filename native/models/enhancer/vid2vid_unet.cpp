#include "models/enhancer/vid2vid_unet.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>

#include "ops/ops.h"
#include "models/enhancer/vid2vid_graph.h"
#include "models/t2v/graph_ops.h"

namespace st2v::enhancer {

namespace {

using Renames = std::vector<std::pair<std::string, std::string>>;

// The enhancer ResBlock's names -> the diffusers ResnetBlock2D names the shared block binds.
const Renames& res_renames() {
    static const Renames r = {{"in_layers.0.", "norm1."},        {"in_layers.2.", "conv1."},
                              {"emb_layers.1.", "time_emb_proj."}, {"out_layers.0.", "norm2."},
                              {"out_layers.3.", "conv2."},       {"skip_connection.", "conv_shortcut."}};
    return r;
}

// The tensors under `prefix`, renamed for a shared block; Conv1d(k=1) projections [o, i, 1] become [o, i]
// (the TemporalTransformer's proj_in/proj_out are per-frame Linear layers).
io::WeightStore local_store(const io::WeightStore& w, const std::string& prefix, const Renames& ren) {
    io::WeightStore s;
    for (const std::string& full : w.names_with_prefix(prefix)) {
        std::string rel = full.substr(prefix.size());
        for (const auto& [from, to] : ren)
            if (rel.compare(0, from.size(), from) == 0) {
                rel = to + rel.substr(from.size());
                break;
            }
        Tensor t = w.get(full);
        if ((rel == "proj_in.weight" || rel == "proj_out.weight") && t.ndim() == 3) {
            ST2V_CHECK(t.size(2) == 1, Code::kShapeMismatch, "weight '%s' has shape %s, expected [out, in, 1]", full.c_str(),
                       t.shape().str().c_str());
            t = t.contiguous().reshape({t.size(0), t.size(1)});
        }
        s.add(rel, t);
    }
    return s;
}

// Every tensor of a local store must have been bound (strict load, as the official load_state_dict).
void check_all_bound(const io::WeightStore& s, const t2v::Binder& b, const std::string& prefix) {
    if (b.keys().size() == s.size()) return;
    std::vector<std::string> bound = b.keys();
    std::sort(bound.begin(), bound.end());
    for (const std::string& n : s.names())
        if (!std::binary_search(bound.begin(), bound.end(), n))
            ST2V_THROW(Code::kShapeMismatch, "enhancer: unexpected weight '%s%s' (not part of the Vid2VidSDUNet layout)",
                       prefix.c_str(), n.c_str());
}

bool has_any(const io::WeightStore& w, const std::string& prefix) { return !w.names_with_prefix(prefix).empty(); }

std::string idx_name(const char* base, int i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s_%02d", base, i);
    return buf;
}

Module bind_module(const io::WeightStore& w, const std::string& P, int head_dim, size_t* n_bound) {
    Module m;
    if (w.has(P + "in_layers.0.weight")) {
        m.kind = Module::kRes;
        io::WeightStore s = local_store(w, P, res_renames());
        t2v::Binder b(s, "");
        m.res.bind(b);
        m.tconv.bind(b.child("temopral_conv"));
        check_all_bound(s, b, P);
        *n_bound += s.size();
    } else if (w.has(P + "conv.weight")) {
        m.kind = Module::kUp;
        io::WeightStore s = local_store(w, P, {});
        t2v::Binder b(s, "");
        m.conv.bind(b.child("conv"), 1, s.has("conv.bias"));
        check_all_bound(s, b, P);
        *n_bound += s.size();
    } else if (const Tensor* pin = w.find(P + "proj_in.weight")) {
        const bool temporal = pin->ndim() == 3;
        m.kind = temporal ? Module::kTemporal : Module::kSpatial;
        io::WeightStore s = local_store(w, P, {});
        t2v::Binder b(s, "");
        if (temporal) m.temporal.bind(b, head_dim);
        else m.spatial.bind(b, head_dim);
        check_all_bound(s, b, P);
        *n_bound += s.size();
    } else {
        ST2V_THROW(Code::kShapeMismatch, "enhancer: cannot tell what module '%s' is (no in_layers/conv/proj_in weights)",
                   P.c_str());
    }
    return m;
}

// A block of the official nn.ModuleList: `prefix` = "input_blocks.3." etc.
Block bind_block(const io::WeightStore& w, const std::string& prefix, std::string name, int head_dim, size_t* n_bound) {
    Block blk;
    blk.name = std::move(name);
    if (w.has(prefix + "op.weight")) {  // Downsample is the block itself: input_blocks.{3,6,9}.op
        Module m;
        m.kind = Module::kDown;
        io::WeightStore s = local_store(w, prefix, {});
        t2v::Binder b(s, "");
        m.conv.bind(b.child("op"), 2, s.has("op.bias"));
        m.conv.p = ops::Conv2dParams{};
        m.conv.p.stride = 2;
        m.conv.p.pad_top = m.conv.p.pad_bottom = 2;  // padding=(2, 1): 2 rows, 1 column each side
        m.conv.p.pad_left = m.conv.p.pad_right = 1;
        check_all_bound(s, b, prefix);
        *n_bound += s.size();
        blk.mods.push_back(std::move(m));
        return blk;
    }
    for (int j = 0;; ++j) {
        const std::string P = prefix + std::to_string(j) + ".";
        if (!has_any(w, P)) break;
        blk.mods.push_back(bind_module(w, P, head_dim, n_bound));
    }
    ST2V_CHECK(!blk.mods.empty(), Code::kWeightsMissing, "enhancer: block '%s' has no weights", prefix.c_str());
    return blk;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
Tensor sinusoidal_embedding(const std::vector<float>& t, int dim) {
    ST2V_CHECK_ARG(dim >= 2 && dim % 2 == 0, "sinusoidal_embedding: dim %d must be even", dim);
    const int half = dim / 2;
    std::vector<float> freq(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) {
        const float e = -(static_cast<float>(i) / static_cast<float>(half));  // -arange(half).div(half), float32
        freq[static_cast<size_t>(i)] = std::pow(10000.f, e);                // torch.pow(10000, ·) in float32
    }
    const int64_t B = static_cast<int64_t>(t.size());
    Tensor out = Tensor::empty({B, dim});
    float* o = out.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int i = 0; i < half; ++i) {
            const float a = t[static_cast<size_t>(b)] * freq[static_cast<size_t>(i)];  // torch.outer, float32
            o[b * dim + i] = std::cos(a);
            o[b * dim + half + i] = std::sin(a);
        }
    return out;
}

std::string Vid2VidConfig::str() const {
    std::string s = "dim=" + std::to_string(dim) + " levels=[";
    for (size_t i = 0; i < level_channels.size(); ++i)
        s += (i ? "," : "") + std::to_string(level_channels[i]) + (level_attn[i] ? "A" : "");
    s += "] res_blocks=" + std::to_string(num_res_blocks) + " embed=" + std::to_string(embed_dim) +
         " head_dim=" + std::to_string(head_dim) + " ctx=" + std::to_string(context_dim);
    return s;
}

void Vid2VidConfig::check_latent(int64_t H0, int64_t W0, const char* who) const {
    int64_t H = H0, W = W0;
    for (size_t l = 0; l + 1 < level_channels.size(); ++l) {
        ST2V_CHECK(H % 2 == 0 && W % 2 == 0 && H >= 2, Code::kShapeMismatch,
                   "%s: latent %lldx%lld does not fit the enhancer geometry (H even and W divisible by %d at every level)",
                   who, (long long)H0, (long long)W0, 1 << (level_channels.size() - 1));
        H = H / 2 + 1;
        W = W / 2;
    }
}

std::vector<float> Vid2VidConfig::check_forward(const Shape& x, const Shape& y, const std::vector<float>& t,
                                                const char* who) const {
    ST2V_CHECK(x.ndim() == 5 && x[1] == in_dim, Code::kShapeMismatch, "%s: x has shape %s, expected [B, %d, F, H, W]", who,
               x.str().c_str(), in_dim);
    const int64_t B = x[0];
    ST2V_CHECK(y.ndim() == 3 && y[0] == B && y[2] == context_dim, Code::kShapeMismatch,
               "%s: y has shape %s, expected [%lld, T, %lld]", who, y.str().c_str(), (long long)B, (long long)context_dim);
    ST2V_CHECK(t.size() == 1 || static_cast<int64_t>(t.size()) == B, Code::kShapeMismatch,
               "%s: %zu timesteps for batch %lld", who, t.size(), (long long)B);
    check_latent(x[3], x[4], who);
    std::vector<float> tb(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) tb[static_cast<size_t>(b)] = t.size() == 1 ? t[0] : t[static_cast<size_t>(b)];
    return tb;
}

Vid2VidConfig Vid2VidConfig::detect(const io::WeightStore& w, const std::string& p, int head_dim) {
    Vid2VidConfig c;
    const Tensor* ci = w.find(p + "input_blocks.0.0.weight");
    ST2V_CHECK(ci != nullptr && ci->ndim() == 4, Code::kWeightsMissing,
               "enhancer: missing weight '%sinput_blocks.0.0.weight' (not a Vid2VidSDUNet state dict?)", p.c_str());
    c.dim = ci->size(0);
    c.in_dim = static_cast<int>(ci->size(1));
    const Tensor* te = w.find(p + "time_embed.0.weight");
    ST2V_CHECK(te != nullptr, Code::kWeightsMissing, "enhancer: missing weight '%stime_embed.0.weight'", p.c_str());
    c.embed_dim = te->size(0);
    const Tensor* oc = w.find(p + "out.2.weight");
    ST2V_CHECK(oc != nullptr, Code::kWeightsMissing, "enhancer: missing weight '%sout.2.weight'", p.c_str());
    c.out_dim = static_cast<int>(oc->size(0));
    c.head_dim = head_dim > 0 ? head_dim : static_cast<int>(std::min<int64_t>(64, c.dim));
    // Walk the down path: levels end at a Downsample (or at the end).
    int64_t cur = -1;
    bool attn = false;
    int res_in_level = 0, res_first = -1;
    c.context_dim = 0;
    for (int k = 1;; ++k) {
        const std::string B = p + "input_blocks." + std::to_string(k) + ".";
        if (!has_any(w, B)) break;
        if (w.has(B + "op.weight")) {
            c.level_channels.push_back(cur);
            c.level_attn.push_back(attn);
            if (res_first < 0) res_first = res_in_level;
            attn = false;
            res_in_level = 0;
            continue;
        }
        if (const Tensor* r = w.find(B + "0.in_layers.2.weight")) {
            cur = r->size(0);
            ++res_in_level;
        }
        if (const Tensor* k1 = w.find(B + "1.transformer_blocks.0.attn2.to_k.weight")) {
            attn = true;
            if (c.context_dim == 0) c.context_dim = k1->size(1);
        }
    }
    ST2V_CHECK(cur > 0, Code::kWeightsMissing, "enhancer: no ResBlocks under '%sinput_blocks.'", p.c_str());
    c.level_channels.push_back(cur);
    c.level_attn.push_back(attn);
    c.num_res_blocks = res_first < 0 ? res_in_level : res_first;
    if (c.context_dim == 0) c.context_dim = 1024;
    return c;
}

Vid2VidUNet::Vid2VidUNet(const io::WeightStore& w, const std::string& p, int head_dim) {
    cfg_ = Vid2VidConfig::detect(w, p, head_dim);
    const int hd = cfg_.head_dim;
    {
        io::WeightStore s = local_store(w, p + "time_embed.", {});
        t2v::Binder b(s, "");
        te1_.bind(b.child("0"));
        te2_.bind(b.child("2"));
        check_all_bound(s, b, p + "time_embed.");
        n_bound_ += s.size();
    }
    {
        io::WeightStore s = local_store(w, p + "out.", {});
        t2v::Binder b(s, "");
        out_norm_.bind(b.child("0"));
        out_conv_.bind(b.child("2"));
        check_all_bound(s, b, p + "out.");
        n_bound_ += s.size();
    }
    // input_blocks.0 = [conv_in, TemporalTransformer(dim, num_heads, head_dim)]
    {
        Block b0;
        b0.name = idx_name("input_block", 0);
        Module conv_in;
        conv_in.kind = Module::kConv;
        io::WeightStore s = local_store(w, p + "input_blocks.0.0.", {});
        t2v::Binder b(s, "");
        conv_in.conv.bind(b, 1, true);
        check_all_bound(s, b, p + "input_blocks.0.0.");
        n_bound_ += s.size();
        b0.mods.push_back(std::move(conv_in));
        if (has_any(w, p + "input_blocks.0.1.")) b0.mods.push_back(bind_module(w, p + "input_blocks.0.1.", hd, &n_bound_));
        input_.push_back(std::move(b0));
    }
    for (int k = 1;; ++k) {
        const std::string B = p + "input_blocks." + std::to_string(k) + ".";
        if (!has_any(w, B)) break;
        input_.push_back(bind_block(w, B, idx_name("input_block", k), hd, &n_bound_));
    }
    middle_ = bind_block(w, p + "middle_block.", "middle_block", hd, &n_bound_);
    for (int k = 0;; ++k) {
        const std::string B = p + "output_blocks." + std::to_string(k) + ".";
        if (!has_any(w, B)) break;
        output_.push_back(bind_block(w, B, idx_name("output_block", k), hd, &n_bound_));
    }
    ST2V_CHECK(output_.size() == input_.size(), Code::kShapeMismatch,
               "enhancer: %zu output blocks for %zu input blocks (each output block consumes one skip)", output_.size(),
               input_.size());
    const size_t total = w.names_with_prefix(p).size();
    ST2V_CHECK(n_bound_ == total, Code::kShapeMismatch,
               "enhancer: bound %zu of the %zu tensors under '%s' (unexpected keys in the state dict)", n_bound_, total,
               p.c_str());
}

Tensor Vid2VidUNet::forward(const Tensor& x, const std::vector<float>& t, const Tensor& y, const Tap& tap) const {
    const std::vector<float> tb = cfg_.check_forward(x.shape(), y.shape(), t, "enhancer");
    check_dtype(x, DType::F32, "enhancer", "x");
    const int frames = static_cast<int>(x.size(2));
    Tensor e = te2_(te1_(sinusoidal_embedding(tb, static_cast<int>(te1_.in())), ops::Act::kSilu));  // [B, E]
    Tensor temb_silu = t2v::repeat_interleave(ops::silu(e), frames);                                // [B*F, E]
    // per sample [B, T, D] (Attention repeats its K / V per frame), or [B*F, T, D] as the reference holds it
    Tensor ctx = t2v::detail::context_per_sample() ? y.contiguous() : t2v::repeat_interleave(y.contiguous(), frames);
    return detail::Vid2VidGraph<t2v::detail::CpuGraphOps>::forward(input_, middle_, output_, out_norm_, out_conv_, x,
                                                                   temb_silu, ctx, frames, "enhancer", tap);
}

// ---------------------------------------------------------------------------------------------------
io::WeightStore random_vid2vid_weights(int64_t dim, const std::vector<int>& mult, int attn_levels, int head_dim,
                                       int num_heads, int64_t ctx_dim, uint64_t seed, DType dtype) {
    ST2V_CHECK_ARG(dim > 0 && dim % 32 == 0 && !mult.empty(), "random_vid2vid_weights: dim %lld must be a multiple of 32",
                   (long long)dim);
    io::WeightStore w;
    std::mt19937_64 gen(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    auto put = [&](const std::string& n, Shape s, float std, float mean = 0.f) {
        Tensor t = Tensor::empty(s);
        float* d = t.f32();
        for (int64_t i = 0; i < t.numel(); ++i) d[i] = mean + std * nd(gen);
        w.add(n, dtype == DType::F32 ? t : t.to(dtype));
    };
    auto lin = [&](const std::string& n, int64_t o, int64_t i, bool bias) {
        put(n + ".weight", {o, i}, 1.f / std::sqrt(static_cast<float>(i)));
        if (bias) put(n + ".bias", {o}, 0.02f);
    };
    auto norm = [&](const std::string& n, int64_t c) {
        put(n + ".weight", {c}, 0.1f, 1.f);
        put(n + ".bias", {c}, 0.02f);
    };
    auto conv = [&](const std::string& n, int64_t o, int64_t i, int k) {
        put(n + ".weight", {o, i, k, k}, 1.f / std::sqrt(static_cast<float>(i * k * k)));
        put(n + ".bias", {o}, 0.02f);
    };
    const int64_t E = 4 * dim;
    auto res = [&](const std::string& p, int64_t ci, int64_t co) {
        norm(p + "in_layers.0", ci);
        conv(p + "in_layers.2", co, ci, 3);
        lin(p + "emb_layers.1", co, E, true);
        norm(p + "out_layers.0", co);
        conv(p + "out_layers.3", co, co, 3);
        if (ci != co) conv(p + "skip_connection", co, ci, 1);
        for (int i = 1; i <= 4; ++i) {
            const std::string c = p + "temopral_conv.conv" + std::to_string(i);
            norm(c + ".0", co);
            const std::string cw = c + (i == 1 ? ".2" : ".3");
            put(cw + ".weight", {co, co, 3, 1, 1}, 0.3f / std::sqrt(static_cast<float>(3 * co)));
            put(cw + ".bias", {co}, 0.02f);
        }
    };
    auto block = [&](const std::string& p, int64_t c, int64_t inner, int64_t kv) {
        const std::string t = p + "transformer_blocks.0.";
        for (const char* a : {"attn1", "attn2"}) {
            lin(t + a + ".to_q", inner, inner, false);
            lin(t + a + ".to_k", inner, std::string(a) == "attn2" ? kv : inner, false);
            lin(t + a + ".to_v", inner, std::string(a) == "attn2" ? kv : inner, false);
            lin(t + a + ".to_out.0", inner, inner, true);
        }
        lin(t + "ff.net.0.proj", 8 * inner, inner, true);
        lin(t + "ff.net.2", inner, 4 * inner, true);
        norm(t + "norm1", inner);
        norm(t + "norm2", inner);
        norm(t + "norm3", inner);
        (void)c;
    };
    auto spatial = [&](const std::string& p, int64_t c) {
        norm(p + "norm", c);
        lin(p + "proj_in", c, c, true);
        block(p, c, c, ctx_dim);
        lin(p + "proj_out", c, c, true);
    };
    auto temporal = [&](const std::string& p, int64_t c, int64_t inner) {
        norm(p + "norm", c);
        put(p + "proj_in.weight", {inner, c, 1}, 1.f / std::sqrt(static_cast<float>(c)));
        put(p + "proj_in.bias", {inner}, 0.02f);
        block(p, c, inner, inner);
        put(p + "proj_out.weight", {c, inner, 1}, 1.f / std::sqrt(static_cast<float>(inner)));
        put(p + "proj_out.bias", {c}, 0.02f);
    };
    lin("time_embed.0", E, dim, true);
    lin("time_embed.2", E, E, true);
    conv("input_blocks.0.0", dim, 4, 3);
    temporal("input_blocks.0.1.", dim, static_cast<int64_t>(num_heads) * head_dim);
    std::vector<int64_t> skip_ch = {dim};
    int k = 1;
    int64_t cin = dim;
    const int L = static_cast<int>(mult.size());
    for (int l = 0; l < L; ++l) {
        const int64_t co = dim * mult[static_cast<size_t>(l)];
        for (int r = 0; r < 2; ++r, ++k) {
            const std::string p = "input_blocks." + std::to_string(k) + ".";
            res(p + "0.", cin, co);
            if (l < attn_levels) {
                spatial(p + "1.", co);
                temporal(p + "2.", co, co);
            }
            cin = co;
            skip_ch.push_back(co);
        }
        if (l + 1 < L) {
            conv("input_blocks." + std::to_string(k) + ".op", co, co, 3);
            skip_ch.push_back(co);
            ++k;
        }
    }
    res("middle_block.0.", cin, cin);
    spatial("middle_block.1.", cin);
    temporal("middle_block.2.", cin, cin);
    res("middle_block.3.", cin, cin);
    k = 0;
    for (int l = L - 1; l >= 0; --l) {
        const int64_t co = dim * mult[static_cast<size_t>(l)];
        for (int r = 0; r < 3; ++r, ++k) {
            const std::string p = "output_blocks." + std::to_string(k) + ".";
            const int64_t cs = skip_ch.back();
            skip_ch.pop_back();
            res(p + "0.", cin + cs, co);
            int j = 1;
            if (l < attn_levels) {
                spatial(p + "1.", co);
                temporal(p + "2.", co, co);
                j = 3;
            }
            cin = co;
            if (l > 0 && r == 2) conv(p + std::to_string(j) + ".conv", co, co, 3);
        }
    }
    norm("out.0", dim);
    conv("out.2", 4, dim, 3);
    return w;
}

void Vid2VidUNet::set_token_chunks(int64_t ff, int64_t temporal) {
    ST2V_CHECK_ARG(ff >= 0 && temporal >= 0, "token chunks must be >= 0");
    auto apply = [ff, temporal](Block& b) {
        for (Module& m : b.mods) {
            m.spatial.block.ff_token_chunk = ff;
            m.temporal.block.ff_token_chunk = ff;
            m.temporal.token_chunk = temporal;
        }
    };
    for (Block& b : input_) apply(b);
    apply(middle_);
    for (Block& b : output_) apply(b);
}

}  // namespace st2v::enhancer
