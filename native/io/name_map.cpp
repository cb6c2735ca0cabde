// The name-mapping table (see name_map.h for the canonical naming and the list of source namings).
#include "io/name_map.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

namespace st2v::io {

namespace {

bool starts(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// Glob match: '#' = one or more digits (captured), '*' = the rest of the string (captured; only at the end).
bool match(const std::string& s, const char* pat, std::vector<std::string>* caps) {
    caps->clear();
    size_t i = 0;
    for (const char* p = pat; *p; ++p) {
        if (*p == '#') {
            size_t j = i;
            while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
            if (j == i) return false;
            caps->push_back(s.substr(i, j - i));
            i = j;
        } else if (*p == '*') {
            caps->push_back(s.substr(i));
            return true;
        } else {
            if (i >= s.size() || s[i] != *p) return false;
            ++i;
        }
    }
    return i == s.size();
}

int num(const std::string& s) { return std::atoi(s.c_str()); }

// Canonical prefix -> component.
const std::vector<std::pair<std::string, std::string>>& prefix_components() {
    static const std::vector<std::pair<std::string, std::string>> v = {
        {"base_model.", "unet"},       {"unet.", "cam"},
        {"resampler.", "resampler"},   {"text_encoder.", "text_encoder"},
        {"image_encoder.", "image_encoder"}, {"vae.", "vae"},
        {"enhancer.", "enhancer"},     {"text_last_block.", "text_last_block"},
    };
    return v;
}

struct Mapper {
    NameMapResult r;
    void add(const std::string& src, const std::string& dst, const Shape& shape) {
        MappedTensor m;
        m.source = src;
        m.target = dst;
        m.component = component_of(dst);
        m.shape = shape;
        r.mapped.push_back(std::move(m));
    }
    void add_reshape(const std::string& src, const std::string& dst, const Shape& from, const Shape& to) {
        ST2V_CHECK(from.numel() == to.numel(), Code::kShapeMismatch, "name map: %s %s cannot become %s %s", src.c_str(),
                   from.str().c_str(), dst.c_str(), to.str().c_str());
        add(src, dst, to);
        if (from != to) r.mapped.back().op = "reshape";
    }
    void add_rows(const std::string& src, const std::string& dst, const Shape& from, int64_t b, int64_t e) {
        Shape to = from;
        to[0] = e - b;
        add(src, dst, to);
        r.mapped.back().op = "rows";
        r.mapped.back().row_begin = b;
        r.mapped.back().row_end = e;
    }
};

// diffusers VAE names (relative to the VAE): the deprecated attention names -> current ones; 1x1-conv
// attention projections -> linear weights.
void map_vae_rel(Mapper& m, const std::string& src, const std::string& rel, const Shape& shape) {
    std::string out = rel;
    bool attn_proj = false;
    static const std::pair<const char*, const char*> kLegacy[] = {
        {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"},
        {"to_q", "to_q"},  {"to_k", "to_k"}, {"to_v", "to_v"},  {"to_out.0", "to_out.0"}};
    // Rewrite the member right after ".attentions.N.".
    size_t a = rel.find(".attentions.");
    if (a != std::string::npos) {
        size_t d = rel.find('.', a + 12);
        if (d != std::string::npos) {
            std::string head = rel.substr(0, d + 1), tail = rel.substr(d + 1);
            for (const auto& l : kLegacy) {
                std::string p = std::string(l.first) + ".";
                if (starts(tail, p.c_str())) {
                    out = head + l.second + "." + tail.substr(p.size());
                    attn_proj = true;
                    break;
                }
            }
        }
    }
    const std::string dst = "vae." + out;
    if (attn_proj && shape.ndim() == 4 && shape[2] == 1 && shape[3] == 1)
        m.add_reshape(src, dst, shape, Shape({shape[0], shape[1]}));
    else
        m.add(src, dst, shape);
}

void map_ldm_vae(Mapper& m, const std::vector<std::pair<std::string, Shape>>& keys) {
    bool prefixed = false;
    for (const auto& k : keys)
        if (starts(k.first, "first_stage_model.")) prefixed = true;
    int n_up = 0;
    std::vector<std::string> c;
    for (const auto& k : keys) {
        std::string rel = prefixed ? (starts(k.first, "first_stage_model.") ? k.first.substr(18) : "") : k.first;
        if (match(rel, "decoder.up.#.*", &c)) n_up = std::max(n_up, num(c[0]) + 1);
    }
    for (const auto& k : keys) {
        const std::string& src = k.first;
        const Shape& sh = k.second;
        if (prefixed && !starts(src, "first_stage_model.")) {
            m.r.dropped.push_back(src);  // the rest of a whole SD checkpoint
            continue;
        }
        const std::string rel = prefixed ? src.substr(18) : src;
        auto resnet_rest = [](const std::string& rest) {
            return starts(rest, "nin_shortcut.") ? "conv_shortcut." + rest.substr(13) : rest;
        };
        std::string out;
        if (match(rel, "encoder.down.#.block.#.*", &c)) {
            out = "encoder.down_blocks." + c[0] + ".resnets." + c[1] + "." + resnet_rest(c[2]);
        } else if (match(rel, "encoder.down.#.downsample.conv.*", &c)) {
            out = "encoder.down_blocks." + c[0] + ".downsamplers.0.conv." + c[1];
        } else if (match(rel, "decoder.up.#.block.#.*", &c)) {
            out = "decoder.up_blocks." + std::to_string(n_up - 1 - num(c[0])) + ".resnets." + c[1] + "." + resnet_rest(c[2]);
        } else if (match(rel, "decoder.up.#.upsample.conv.*", &c)) {
            out = "decoder.up_blocks." + std::to_string(n_up - 1 - num(c[0])) + ".upsamplers.0.conv." + c[1];
        } else if (match(rel, "encoder.mid.block_#.*", &c) || match(rel, "decoder.mid.block_#.*", &c)) {
            out = rel.substr(0, 7) + ".mid_block.resnets." + std::to_string(num(c[0]) - 1) + "." + resnet_rest(c[1]);
        } else if (match(rel, "encoder.mid.attn_1.*", &c) || match(rel, "decoder.mid.attn_1.*", &c)) {
            const std::string part = rel.substr(0, 7);
            static const std::pair<const char*, const char*> kAttn[] = {
                {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."}};
            for (const auto& a : kAttn)
                if (starts(c[0], a.first)) out = part + ".mid_block.attentions.0." + a.second + c[0].substr(std::string(a.first).size());
            if (!out.empty() && out.find("group_norm") == std::string::npos && sh.ndim() == 4) {
                ST2V_CHECK(sh[2] == 1 && sh[3] == 1, Code::kShapeMismatch,
                           "name map: %s has shape %s, a 1x1 convolution [C, C, 1, 1] was expected", src.c_str(),
                           sh.str().c_str());
                m.add_reshape(src, "vae." + out, sh, Shape({sh[0], sh[1]}));
                continue;
            }
        } else if (match(rel, "encoder.norm_out.*", &c) || match(rel, "decoder.norm_out.*", &c)) {
            out = rel.substr(0, 7) + ".conv_norm_out." + c[0];
        } else if (match(rel, "encoder.conv_in.*", &c) || match(rel, "decoder.conv_in.*", &c) ||
                   match(rel, "encoder.conv_out.*", &c) || match(rel, "decoder.conv_out.*", &c) ||
                   match(rel, "quant_conv.*", &c) || match(rel, "post_quant_conv.*", &c)) {
            out = rel;
        }
        if (out.empty()) m.r.unmapped.push_back(src);
        else m.add(src, "vae." + out, sh);
    }
}

void map_openclip(Mapper& m, const std::vector<std::pair<std::string, Shape>>& keys) {
    std::vector<std::string> c;
    int layers = 0;
    for (const auto& k : keys)
        if (match(k.first, "transformer.resblocks.#.*", &c)) layers = std::max(layers, num(c[0]) + 1);
    const std::string T = "text_encoder.text_model.";
    const std::string I = "image_encoder.model.";
    for (const auto& k : keys) {
        const std::string& src = k.first;
        const Shape& sh = k.second;
        if (match(src, "transformer.resblocks.#.*", &c)) {
            // The last text block is unused by StreamingT2V and the enhancer (penultimate-layer features) and
            // absent from streaming_t2v.ckpt; the CLIP score needs it: its own component, HF layer names.
            const std::string L =
                num(c[0]) == layers - 1 ? std::string("text_last_block.") : T + "encoder.layers." + c[0] + ".";
            const std::string& rest = c[1];
            std::vector<std::string> c2;
            if (rest == "attn.in_proj_weight" || rest == "attn.in_proj_bias") {
                ST2V_CHECK(sh.ndim() >= 1 && sh[0] % 3 == 0, Code::kShapeMismatch,
                           "name map: %s has shape %s, dim 0 must be 3 x width", src.c_str(), sh.str().c_str());
                const int64_t w = sh[0] / 3;
                const std::string suf = rest == "attn.in_proj_weight" ? ".weight" : ".bias";
                m.add_rows(src, L + "self_attn.q_proj" + suf, sh, 0, w);
                m.add_rows(src, L + "self_attn.k_proj" + suf, sh, w, 2 * w);
                m.add_rows(src, L + "self_attn.v_proj" + suf, sh, 2 * w, 3 * w);
            } else if (match(rest, "attn.out_proj.*", &c2)) {
                m.add(src, L + "self_attn.out_proj." + c2[0], sh);
            } else if (match(rest, "ln_1.*", &c2)) {
                m.add(src, L + "layer_norm1." + c2[0], sh);
            } else if (match(rest, "ln_2.*", &c2)) {
                m.add(src, L + "layer_norm2." + c2[0], sh);
            } else if (match(rest, "mlp.c_fc.*", &c2)) {
                m.add(src, L + "mlp.fc1." + c2[0], sh);
            } else if (match(rest, "mlp.c_proj.*", &c2)) {
                m.add(src, L + "mlp.fc2." + c2[0], sh);
            } else {
                m.r.unmapped.push_back(src);
            }
            continue;
        }
        if (src == "attn_mask") {
            m.r.dropped.push_back(src);
            continue;
        }
        // Everything else belongs to the image encoder's copy of the OpenCLIP model (visual.* and the text-side
        // leftovers); three text tensors are also the HF text encoder's embeddings / final norm.
        m.add(src, I + src, sh);
        if (src == "token_embedding.weight") m.add(src, T + "embeddings.token_embedding.weight", sh);
        else if (src == "positional_embedding") m.add(src, T + "embeddings.position_embedding.weight", sh);
        else if (match(src, "ln_final.*", &c)) m.add(src, T + "final_layer_norm." + c[0], sh);
    }
}

}  // namespace

const std::vector<std::string>& namings() {
    static const std::vector<std::string> v = {"streamingt2v", "diffusers_unet", "diffusers_vae", "hf_clip_text",
                                               "ldm_vae",      "openclip",       "enhancer"};
    return v;
}

const std::vector<std::string>& components() {
    static const std::vector<std::string> v = {"unet",     "cam",      "resampler",      "text_encoder", "image_encoder",
                                               "vae",      "enhancer", "text_last_block"};
    return v;
}

std::string component_of(const std::string& canonical) {
    for (const auto& pc : prefix_components())
        if (starts(canonical, pc.first.c_str())) return pc.second;
    return "";
}

std::string detect_naming(const std::vector<std::string>& keys) {
    std::set<std::string> k(keys.begin(), keys.end());
    bool canonical_only = !keys.empty();
    bool st2v_marker = false, ldm = false, dvae = false, oclip_tf = false;
    for (const auto& s : keys) {
        if (component_of(s).empty()) canonical_only = false;
        if (starts(s, "base_model.") || starts(s, "resampler.")) st2v_marker = true;
        if (starts(s, "first_stage_model.encoder.down.") || starts(s, "encoder.down.") || starts(s, "decoder.up."))
            ldm = true;
        if (starts(s, "encoder.down_blocks.") || starts(s, "decoder.up_blocks.")) dvae = true;
        if (starts(s, "transformer.resblocks.")) oclip_tf = true;
    }
    if (st2v_marker || canonical_only) return "streamingt2v";
    if (k.count("input_blocks.0.0.weight") && k.count("time_embed.0.weight")) return "enhancer";
    if (ldm) return "ldm_vae";
    if (dvae) return "diffusers_vae";
    if (k.count("text_model.embeddings.token_embedding.weight") || k.count("embeddings.token_embedding.weight"))
        return "hf_clip_text";
    if (k.count("visual.conv1.weight") || (oclip_tf && k.count("token_embedding.weight"))) return "openclip";
    if (k.count("conv_in.weight") && k.count("time_embedding.linear_1.weight")) return "diffusers_unet";
    return "";
}

NameMapResult map_names(const std::string& naming_in, const std::vector<std::pair<std::string, Shape>>& keys) {
    std::string naming = naming_in;
    if (naming.empty()) {
        std::vector<std::string> names;
        for (const auto& k : keys) names.push_back(k.first);
        naming = detect_naming(names);
        ST2V_CHECK(!naming.empty(), Code::kUnsupported,
                   "name map: cannot tell which model these %zu weights belong to (first key '%s')", keys.size(),
                   keys.empty() ? "" : keys[0].first.c_str());
    }
    ST2V_CHECK_ARG(std::find(namings().begin(), namings().end(), naming) != namings().end(),
                   "name map: unknown naming '%s'", naming.c_str());
    Mapper m;
    m.r.naming = naming;
    std::vector<std::string> c;
    if (naming == "ldm_vae") {
        map_ldm_vae(m, keys);
    } else if (naming == "openclip") {
        map_openclip(m, keys);
    } else {
        for (const auto& k : keys) {
            const std::string& s = k.first;
            const Shape& sh = k.second;
            if (naming == "streamingt2v") {
                if (starts(s, "vae.")) map_vae_rel(m, s, s.substr(4), sh);
                else if (!component_of(s).empty()) m.add(s, s, sh);
                else m.r.unmapped.push_back(s);
            } else if (naming == "diffusers_unet") {
                m.add(s, "base_model." + s, sh);
            } else if (naming == "diffusers_vae") {
                map_vae_rel(m, s, s, sh);
            } else if (naming == "hf_clip_text") {
                if (s == "text_model.embeddings.position_ids" || s == "embeddings.position_ids") m.r.dropped.push_back(s);
                else if (starts(s, "text_model.")) m.add(s, "text_encoder." + s, sh);
                else if (starts(s, "embeddings.") || starts(s, "encoder.") || starts(s, "final_layer_norm."))
                    m.add(s, "text_encoder.text_model." + s, sh);
                else m.r.unmapped.push_back(s);
            } else if (naming == "enhancer") {
                m.add(s, "enhancer." + s, sh);
            }
        }
    }
    // Two sources for one target would silently lose a tensor.
    std::map<std::string, std::string> seen;
    for (const auto& t : m.r.mapped) {
        auto it = seen.emplace(t.target, t.source);
        ST2V_CHECK(it.second, Code::kFormat, "name map: '%s' and '%s' both map to '%s'", it.first->second.c_str(),
                   t.source.c_str(), t.target.c_str());
    }
    return std::move(m.r);
}

}  // namespace st2v::io
