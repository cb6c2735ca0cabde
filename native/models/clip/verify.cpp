#include "models/clip/verify.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/json.h"
#include "io/npy.h"
#include "models/clip/clip.h"
#include "models/clip/weights_util.h"
#include "models/vae/vae.h"
#include "ops/ops.h"

namespace st2v::enc {

namespace {
bool exists(const std::string& p) { return std::filesystem::exists(p); }
using verify::compare;
}  // namespace

void vae_cases(const std::string& dir, std::vector<verify::CaseResult>& out) {
    const std::string V = dir + "/";
    if (!exists(V + "io/enc_h.npy")) return;
    auto npy = [&](const std::string& n) { return io::read_npy(V + "io/" + n + ".npy"); };
    for (const char* file : {"vae_diffusers", "vae_diffusers_legacy_attn", "vae_ldm"}) {
        if (!exists(V + file + ".safetensors")) continue;
        const std::string tag = std::string("vae/") + file;
        vae::AutoencoderKL m(load_canonical(V + file + ".safetensors"));
        std::vector<std::pair<std::string, Tensor>> inter;
        Tensor img = npy("image");
        out.push_back(compare(tag + "/enc_h", m.encoder(img, &inter), npy("enc_h")));
        vae::Posterior p = m.encode(img);
        out.push_back(compare(tag + "/moments", p.moments, npy("moments")));
        out.push_back(compare(tag + "/post_mean", p.mean, npy("post_mean")));
        out.push_back(compare(tag + "/post_logvar", p.logvar, npy("post_logvar")));
        out.push_back(compare(tag + "/post_std", p.std, npy("post_std")));
        Tensor s = vae::AutoencoderKL::sample(p, npy("sample_noise"));
        out.push_back(compare(tag + "/post_sample", s, npy("post_sample")));
        out.push_back(compare(tag + "/post_sample_scaled", ops::scale(s, m.config().scaling_factor), npy("post_sample_scaled")));
        out.push_back(compare(tag + "/dec_of_mean", m.decode(p.mean, &inter), npy("dec_of_mean")));
        out.push_back(compare(tag + "/dec_of_z", m.decode(npy("z_in")), npy("dec_of_z")));
        for (auto& kv : inter)
            if (exists(V + "io/inter_" + kv.first + ".npy"))
                out.push_back(compare(tag + "/inter_" + kv.first, kv.second, npy("inter_" + kv.first)));
    }
}

void clip_cases(const std::string& dir, std::vector<verify::CaseResult>& out) {
    const std::string C = dir + "/";
    if (!exists(C + "openclip_tiny.safetensors")) return;
    io::WeightStore w = load_canonical(C + "openclip_tiny.safetensors", "openclip");
    ClipTextModel text(w);
    if (exists(C + "hf_text/ids.npy"))
        out.push_back(compare("clip/hf_text/last_hidden_state_eager", text.forward(io::read_npy(C + "hf_text/ids.npy")),
                              io::read_npy(C + "hf_text/last_hidden_state_eager.npy")));
    if (exists(C + "enh_text/ids.npy"))
        out.push_back(compare("clip/enh_text/z", text.forward(io::read_npy(C + "enh_text/ids.npy")),
                              io::read_npy(C + "enh_text/z.npy")));
    if (!exists(C + "apm_image/image.npy")) return;
    OpenClipImageTower vis(w);
    ImageTowerTrace tr;
    Tensor pooled = vis.forward(io::read_npy(C + "apm_image/image.npy"), &tr);
    const std::pair<const char*, Tensor*> steps[] = {
        {"resized", &tr.resized},         {"preprocessed", &tr.preprocessed}, {"patch_embed", &tr.patch_embed},
        {"tokens_in", &tr.tokens_in},     {"ln_pre_out", &tr.ln_pre_out},     {"transformer_out", &tr.transformer_out},
        {"ln_post_out", &tr.ln_post_out}, {"pooled", &pooled}};
    for (const auto& st : steps)
        if (exists(C + "apm_image/" + st.first + ".npy"))
            out.push_back(compare(std::string("clip/apm_image/") + st.first, *st.second,
                                  io::read_npy(C + "apm_image/" + st.first + ".npy")));
}

void video_cases(const std::string& dir, std::vector<verify::CaseResult>& out) {
    const std::string D = dir + "/";
    if (!exists(D + "vae_tiny.safetensors") || !exists(D + "ddim/latents_final.npy") || !exists(D + "ddim/video.npy")) return;
    int groups = 32;
    if (exists(D + "manifest.json")) {
        std::ifstream f(D + "manifest.json");
        std::stringstream ss;
        ss << f.rdbuf();
        io::Json m = io::Json::parse(ss.str());
        if (const io::Json* c = m.find("vae_tiny_config"))
            if (const io::Json* g = c->find("norm_num_groups"))
                if (g->is_number()) groups = static_cast<int>(g->as_double());
    }
    vae::AutoencoderKL m(load_canonical(D + "vae_tiny.safetensors"), "vae.", groups);
    Tensor x0 = io::read_npy(D + "ddim/latents_final.npy").to(DType::F32);  // [B, C, F, h, w]
    ST2V_CHECK(x0.ndim() == 5, Code::kShapeMismatch, "verify video: latents_final %s is not 5-D", x0.desc().c_str());
    const int64_t B = x0.size(0), Cc = x0.size(1), F = x0.size(2), h = x0.size(3), wd = x0.size(4);
    Tensor z = ops::scale(x0.permute({0, 2, 1, 3, 4}).contiguous().reshape(Shape({B * F, Cc, h, wd})),
                          1.f / m.config().scaling_factor);
    Tensor v = m.decode(z);
    float* pv = v.f32();
    for (int64_t i = 0; i < v.numel(); ++i) pv[i] = std::min(1.f, std::max(0.f, pv[i] * 0.5f + 0.5f));
    out.push_back(compare("ddim_video", v, io::read_npy(D + "ddim/video.npy")));
}

std::vector<verify::CaseResult> verify_encoders(const std::string& shared) {
    std::vector<verify::CaseResult> out;
    vae_cases(shared + "/golden/vae", out);
    clip_cases(shared + "/golden/clip", out);
    video_cases(shared + "/golden/st2v", out);
    return out;
}

namespace {
const verify::Registrar reg_encoders(
    "encoders",
    [](verify::Dump& d, std::vector<verify::CaseResult>& out) {
        vae_cases(d.dir(), out);
        clip_cases(d.dir(), out);
        video_cases(d.dir(), out);
    },
    /*order=*/150);
}  // namespace

}  // namespace st2v::enc
