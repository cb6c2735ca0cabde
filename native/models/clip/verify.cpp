#include "models/clip/verify.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "io/npy.h"
#include "models/clip/clip.h"
#include "models/clip/weights_util.h"
#include "models/vae/vae.h"
#include "ops/ops.h"

namespace st2v::enc {

namespace {
void compare(std::vector<CaseResult>& out, const std::string& name, const Tensor& got, const Tensor& ref_in) {
    CaseResult r;
    r.name = name;
    Tensor a = got.contiguous().to(DType::F32), b = ref_in.contiguous().to(DType::F32);
    if (a.shape() != b.shape()) {
        r.note = "shape " + a.shape().str() + " vs reference " + b.shape().str();
        r.max_abs = r.max_rel = INFINITY;
        out.push_back(r);
        return;
    }
    for (int64_t i = 0; i < a.numel(); ++i) {
        const double d = std::fabs(double(a.f32()[i]) - double(b.f32()[i]));
        r.max_abs = std::max(r.max_abs, d);
        r.max_rel = std::max(r.max_rel, d / std::max(1.0, std::fabs(double(b.f32()[i]))));
    }
    r.pass = r.max_rel <= 1e-4;
    out.push_back(r);
}
void skipped(std::vector<CaseResult>& out, const std::string& name, const std::string& why) {
    CaseResult r;
    r.name = name;
    r.skipped = true;
    r.note = why;
    out.push_back(r);
}
bool exists(const std::string& p) { return std::filesystem::exists(p); }
}  // namespace

std::vector<CaseResult> verify_encoders(const std::string& shared) {
    std::vector<CaseResult> out;
    // ---- VAE, every provided naming ----
    const std::string V = shared + "/golden/vae/";
    for (const char* file : {"vae_diffusers", "vae_diffusers_legacy_attn", "vae_ldm"}) {
        const std::string tag = std::string("vae/") + file;
        if (!exists(V + file + ".safetensors")) {
            skipped(out, tag, "absent");
            continue;
        }
        auto npy = [&](const std::string& n) { return io::read_npy(V + "io/" + n + ".npy"); };
        vae::AutoencoderKL m(load_canonical(V + file + ".safetensors"));
        std::vector<std::pair<std::string, Tensor>> inter;
        Tensor img = npy("image");
        compare(out, tag + "/enc_h", m.encoder(img, &inter), npy("enc_h"));
        vae::Posterior p = m.encode(img);
        compare(out, tag + "/moments", p.moments, npy("moments"));
        compare(out, tag + "/post_mean", p.mean, npy("post_mean"));
        compare(out, tag + "/post_logvar", p.logvar, npy("post_logvar"));
        compare(out, tag + "/post_std", p.std, npy("post_std"));
        Tensor s = vae::AutoencoderKL::sample(p, npy("sample_noise"));
        compare(out, tag + "/post_sample", s, npy("post_sample"));
        compare(out, tag + "/post_sample_scaled", ops::scale(s, m.config().scaling_factor), npy("post_sample_scaled"));
        compare(out, tag + "/dec_of_mean", m.decode(p.mean, &inter), npy("dec_of_mean"));
        compare(out, tag + "/dec_of_z", m.decode(npy("z_in")), npy("dec_of_z"));
        for (auto& kv : inter) compare(out, tag + "/inter_" + kv.first, kv.second, npy("inter_" + kv.first));
    }
    // ---- CLIP ----
    const std::string C = shared + "/golden/clip/";
    if (exists(C + "openclip_tiny.safetensors")) {
        io::WeightStore w = load_canonical(C + "openclip_tiny.safetensors", "openclip");
        ClipTextModel text(w);
        compare(out, "clip/hf_text/last_hidden_state_eager", text.forward(io::read_npy(C + "hf_text/ids.npy")),
                io::read_npy(C + "hf_text/last_hidden_state_eager.npy"));
        compare(out, "clip/enh_text/z", text.forward(io::read_npy(C + "enh_text/ids.npy")), io::read_npy(C + "enh_text/z.npy"));
        OpenClipImageTower vis(w);
        ImageTowerTrace tr;
        Tensor pooled = vis.forward(io::read_npy(C + "apm_image/image.npy"), &tr);
        const std::pair<const char*, Tensor*> steps[] = {
            {"resized", &tr.resized},         {"preprocessed", &tr.preprocessed}, {"patch_embed", &tr.patch_embed},
            {"tokens_in", &tr.tokens_in},     {"ln_pre_out", &tr.ln_pre_out},     {"transformer_out", &tr.transformer_out},
            {"ln_post_out", &tr.ln_post_out}, {"pooled", &pooled}};
        for (const auto& st : steps)
            compare(out, std::string("clip/apm_image/") + st.first, *st.second,
                    io::read_npy(C + "apm_image/" + st.first + ".npy"));
    } else {
        skipped(out, "clip", "golden/clip/openclip_tiny.safetensors absent");
    }
    // ---- st2v ddim video from latents_final ----
    const std::string D = shared + "/golden/st2v/";
    if (exists(D + "vae_tiny.safetensors") && exists(D + "ddim/latents_final.npy")) {
        // vae_tiny_config of golden/st2v/manifest.json: norm_num_groups 8 (not visible in the weights).
        vae::AutoencoderKL m(load_canonical(D + "vae_tiny.safetensors"), "vae.", 8);
        Tensor x0 = io::read_npy(D + "ddim/latents_final.npy");  // [B, C, F, h, w]
        const int64_t B = x0.size(0), Cc = x0.size(1), F = x0.size(2), h = x0.size(3), wd = x0.size(4);
        Tensor z = ops::scale(x0.permute({0, 2, 1, 3, 4}).contiguous().reshape(Shape({B * F, Cc, h, wd})),
                              1.f / m.config().scaling_factor);
        Tensor v = m.decode(z);
        float* pv = v.f32();
        for (int64_t i = 0; i < v.numel(); ++i) pv[i] = std::min(1.f, std::max(0.f, pv[i] * 0.5f + 0.5f));
        compare(out, "st2v/ddim/video", v, io::read_npy(D + "ddim/video.npy"));
    } else {
        skipped(out, "st2v/ddim/video", "golden/st2v vae_tiny or latents_final absent");
    }
    return out;
}

}  // namespace st2v::enc
