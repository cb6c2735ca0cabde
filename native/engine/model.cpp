// engine::Model over the canonical weight names: t2v::UNet3D (base_model., with APM + CAM mergers),
// t2v::CamNet (unet.), t2v::Resampler (resampler.), the text and image encoders and the VAE.
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/default_model.h"
#include "engine/model.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/clip/clip.h"
#include "models/t2v/device_unet3d.h"
#include "models/t2v/unet3d.h"
#include "models/vae/device_vae.h"
#include "models/vae/vae.h"

namespace st2v::engine {

namespace {
double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class StreamingT2VModel : public Model {
  public:
    StreamingT2VModel(io::WeightStore w, int latent_size) : w_(std::move(w)) {
        unet_ = std::make_unique<t2v::UNet3D>(w_, "base_model.");
        const t2v::UNetConfig& uc = unet_->config();
        info.has_extension = uc.apm && uc.cam_mergers && !w_.names_with_prefix("unet.").empty() &&
                             !w_.names_with_prefix("resampler.").empty();
        // Stage 1 uses the same network without CAM and APM (the ModelScope base has the same layers); a
        // separate "base." UNet would take precedence when a converted model carries one.
        info.has_base = true;
        if (info.has_extension) {
            cam_ = std::make_unique<t2v::CamNet>(w_, "unet.");
            res_ = std::make_unique<t2v::Resampler>(w_, "resampler.", uc.context_dim);
        }
        text_ = std::make_unique<enc::ClipTextModel>(w_, "text_encoder.text_model.");
        image_ = std::make_unique<enc::OpenClipImageTower>(w_, "image_encoder.model.visual.");
        vae_ = std::make_unique<vae::AutoencoderKL>(w_, "vae.");
        info.weight_bytes = w_.bytes();
        info.latent_channels = uc.in_channels;
        info.chunk_frames = 16;
        info.cond_frames = 8;
        const int64_t f = vae_->factor();
        info.height = info.width = static_cast<int>(latent_size * f);  // 32x32 latents = 256x256 for the real model
        for (const char* c : {"unet", "cam", "resampler", "text_encoder", "image_encoder", "vae"}) info.components.push_back(c);
    }

    Tensor encode_text(const std::vector<int32_t>& ids) override {
        return text_->forward(Tensor::from_data(ids.data(), {1, static_cast<int64_t>(ids.size())}, DType::I32));
    }
    Tensor encode_image(const Tensor& frame) override { return image_->forward(frame); }
    Tensor resample(const Tensor& e) override { return res_->forward(e); }
    Tensor eps_extension(const Tensor& x, float t, const Tensor& ctx, const Tensor& cond, double* ms_cam,
                         double* ms_unet) override {
        if (dev_unet_) {
            using backend::cuda_ops::DeviceTensor;
            ST2V_CHECK(dev_cam_ != nullptr, Code::kUnsupported, "eps_extension: the model has no CAM");
            const DeviceTensor X = DeviceTensor::from_host(x), C = DeviceTensor::from_host(ctx);
            // E_cond once per chunk, as on the CPU (the frames are uploaded only when they change); its time counts
            // as CAM time
            const double a = now_ms();
            const DeviceTensor& E = dev_econd_.get(*dev_cam_, cond);
            if (ms_cam) {
                backend::check(backend::cuda().synchronize(), "synchronize");
                *ms_cam += now_ms() - a;
            }
            return t2v::device_eps_extension(*dev_unet_, *dev_cam_, X, t, C, DeviceTensor(), ms_cam, ms_unet, nullptr, &E)
                .to_host();
        }
        double a = now_ms();
        const int Fc = static_cast<int>(cond.size(0) / x.size(0));
        t2v::CamResiduals r = cam_->forward(x, t, ctx, cond, Fc, nullptr, &econd_.get(*cam_, cond));
        double b = now_ms();
        Tensor eps = unet_->forward(x, t, ctx, &r);
        if (ms_cam) *ms_cam += b - a;
        if (ms_unet) *ms_unet += now_ms() - b;
        return eps;
    }
    Tensor eps_base(const Tensor& x, float t, const Tensor& ctx) override {
        // architecture.md §1.1: the official stage 1 is the ModelScope T2V UNet3D (text tokens only, no CAM, no
        // APM). When the folder carries it (base/unet.safetensors) it runs; otherwise the extension UNet stands
        // in without CAM (see base_forward).
        if (dev_unet_) {
            using backend::cuda_ops::DeviceTensor;
            const DeviceTensor X = DeviceTensor::from_host(x);
            if (dev_stage1_) return dev_stage1_->forward(X, t, DeviceTensor::from_host(ctx), nullptr).to_host();
            return dev_unet_->forward(X, t, DeviceTensor::from_host(base_context(ctx)), nullptr).to_host();
        }
        if (stage1_) return stage1_->forward(x, t, ctx, nullptr);
        return base_forward(x, t, ctx);
    }
    void use_cuda(const std::string& dtype) override {
        ST2V_CHECK_ARG(dtype == "f32" || dtype == "bf16", "use_cuda: dtype must be f32 or bf16");
        const DType dt = dtype == "bf16" ? DType::BF16 : DType::F32;
        // the device modules bind through the CPU classes and upload once; the CPU modules stay loaded (the
        // stage-1 zero-image APM tokens use the encoders, and nothing else changes for the rest of the pipeline)
        auto unet = std::make_unique<t2v::DeviceUNet3D>(w_, "base_model.", dt);
        std::unique_ptr<t2v::DeviceCamNet> cam;
        if (cam_) cam = std::make_unique<t2v::DeviceCamNet>(w_, "unet.", dt);
        std::unique_ptr<t2v::DeviceUNet3D> s1;
        if (stage1_) s1 = std::make_unique<t2v::DeviceUNet3D>(stage1_w_, "base_model.", dt);
        // the VAE decode of every chunk too (f32 weights whatever the denoisers' dtype: vae/device_vae.h)
        auto dvae = std::make_unique<vae::DeviceAutoencoderKL>(*vae_);
        dev_econd_ = t2v::DeviceECondCache();  // features of the previous device CAM (if any) go with it
        dev_vae_ = std::move(dvae);
        dev_unet_ = std::move(unet);
        dev_cam_ = std::move(cam);
        dev_stage1_ = std::move(s1);
    }
    const char* denoiser_backend() const override { return dev_unet_ ? "cuda" : "cpu"; }
    // The ModelScope base UNet3D for stage 1 (a converted text-to-video-ms-1.7b: base_model.* names, no APM).
    void set_stage1(io::WeightStore w) {
        stage1_w_ = std::move(w);
        stage1_ = std::make_unique<t2v::UNet3D>(stage1_w_, "base_model.");
        const t2v::UNetConfig& sc = stage1_->config();
        ST2V_CHECK(!sc.apm && !sc.cam_mergers, Code::kUnsupported,
                   "base/unet.safetensors must be the plain ModelScope UNet3D (it has APM or CAM-merger weights)");
        ST2V_CHECK(sc.context_dim == unet_->config().context_dim && sc.in_channels == unet_->config().in_channels,
                   Code::kShapeMismatch, "base/unet.safetensors: context %lld / in channels %lld differ from the extension UNet's",
                   static_cast<long long>(sc.context_dim), static_cast<long long>(sc.in_channels));
        info.weight_bytes += stage1_w_.bytes();
        info.components.insert(info.components.begin(), "base");
        info.stage1_model = true;
    }
    Tensor decode(const Tensor& z) override { return dev_vae_ ? dev_vae_->decode_host(z) : vae_->decode(z); }
    float vae_scale() const override { return vae_->config().scaling_factor; }

  private:
    // An extension UNet with APM expects 93 tokens; stage 1 of the official pipeline is the plain ModelScope
    // UNet (77 tokens). Without a separate base UNet we pad with the resampled zero-image tokens.
    Tensor base_context(const Tensor& ctx77) {
        if (!unet_->config().apm) return ctx77;
        if (!zero_tokens_.defined()) {
            Tensor zero = Tensor::zeros({1, 3, info.height, info.width});
            zero_tokens_ = res_->forward(image_->forward(zero));  // [1, 16, D]
        }
        std::vector<Tensor> zs(static_cast<size_t>(ctx77.size(0)), zero_tokens_);
        return ops::concat({ctx77, ops::concat(zs, 0)}, 1);
    }
    Tensor base_forward(const Tensor& x, float t, const Tensor& ctx77) {
        return unet_->forward(x, t, base_context(ctx77), nullptr);
    }
    io::WeightStore w_;
    std::unique_ptr<t2v::UNet3D> unet_;
    std::unique_ptr<t2v::CamNet> cam_;
    t2v::ECondCache econd_;  // E_cond of the current chunk's conditioning frames
    std::unique_ptr<t2v::Resampler> res_;
    std::unique_ptr<enc::ClipTextModel> text_;
    std::unique_ptr<enc::OpenClipImageTower> image_;
    std::unique_ptr<vae::AutoencoderKL> vae_;
    Tensor zero_tokens_;
    io::WeightStore stage1_w_;  // outlives stage1_
    std::unique_ptr<t2v::UNet3D> stage1_;
    // use_cuda(): the denoisers on the CUDA backend
    std::unique_ptr<t2v::DeviceUNet3D> dev_unet_, dev_stage1_;
    std::unique_ptr<t2v::DeviceCamNet> dev_cam_;
    t2v::DeviceECondCache dev_econd_;  // E_cond of the current chunk's conditioning frames, on the device
    std::unique_ptr<vae::DeviceAutoencoderKL> dev_vae_;
};
}  // namespace

void Model::use_cuda(const std::string& dtype) {
    (void)dtype;
    ST2V_THROW(Code::kUnsupported, "this model cannot run on the CUDA backend");
}

std::vector<int32_t> Model::tokenize(const std::string& text) const {
    ST2V_CHECK(info.untrained, Code::kUnsupported,
               "this model's BPE tokenizer runs in TypeScript: pass token ids (promptIds / negativeIds)");
    const int32_t sot = 512, eot = 513;
    std::vector<int32_t> ids{sot};
    std::string t;
    bool space = true;
    for (unsigned char ch : text) {  // lower-case, collapse whitespace
        if (std::isspace(ch)) { if (!space) t.push_back(' '); space = true; continue; }
        t.push_back(static_cast<char>(std::tolower(ch)));
        space = false;
    }
    while (!t.empty() && t.back() == ' ') t.pop_back();
    for (size_t i = 0; i < t.size() && ids.size() < 76; ++i) {
        if (t[i] == ' ') continue;
        const bool word_end = i + 1 == t.size() || t[i + 1] == ' ';
        ids.push_back(static_cast<int32_t>(static_cast<unsigned char>(t[i])) + (word_end ? 256 : 0));
    }
    ids.push_back(eot);
    ids.resize(77, eot);
    return ids;
}

std::unique_ptr<Model> load_model_dir(const std::string& dir, const LoadOptions& opts) {
    namespace fs = std::filesystem;
    ST2V_CHECK(fs::is_directory(dir), Code::kNotFound, "model folder not found: %s", dir.c_str());
    io::WeightStore w = io::load_safetensors(dir);  // every *.safetensors of the folder, canonical names
    auto m = std::make_unique<StreamingT2VModel>(std::move(w), 32);
    m->info.name = fs::path(dir).filename().string();
    m->info.description = "converted StreamingT2V model";
    // Stage 1 (architecture.md §1.1): a converted ModelScope text-to-video-ms-1.7b folder under base/.
    const fs::path stage1 = fs::path(dir) / "base" / "unet.safetensors";
    if (fs::is_regular_file(stage1)) m->set_stage1(io::load_safetensors(stage1.string()));
    // model.json: a random-weight folder (bench / tests) says "untrained": it then uses the byte-level tokenizer.
    const fs::path mj = fs::path(dir) / "model.json";
    if (fs::is_regular_file(mj)) {
        std::ifstream f(mj, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        const io::Json j = io::Json::parse(text);
        if (const io::Json* u = j.find("untrained"); u && u->is_bool()) m->info.untrained = u->as_bool();
        if (const io::Json* d = j.find("description"); d && d->is_string()) m->info.description = d->as_string();
    }
    (void)opts;
    return m;
}

std::unique_ptr<Model> make_default_model() {
    TinyConfig c;
    auto m = std::make_unique<StreamingT2VModel>(make_tiny_weights(c), 16);  // 128x128 frames
    m->info.name = "default-tiny";
    m->info.description = "built-in tiny StreamingT2V of the real architecture with seeded random (untrained) weights";
    m->info.untrained = true;
    return m;
}

}  // namespace st2v::engine
