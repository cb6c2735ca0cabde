#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/model.h"
#include "runtime/rng.h"
#include "runtime/schedules.h"

namespace st2v::engine {

namespace {
double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// [B*F, C, h, w] frame-major <-> [B, C, F, h, w] (runtime/schedules.h)
Tensor to_bcfhw(const Tensor& x, int64_t frames) { return runtime::frames_first_to_video(x, x.size(0) / frames); }
Tensor to_bfchw(const Tensor& x) { return runtime::video_to_frames_first(x); }

// Decoded frames [N, 3, H, W] (about [-1, 1]) -> clamp((x + 1) / 2, 0, 1) in place.
void to_unit_range(Tensor& img) {
    float* p = img.f32();
    const int64_t n = img.numel();
    parallel_for(n, [&](int64_t a, int64_t b, int) {
        for (int64_t i = a; i < b; ++i) p[i] = std::min(1.f, std::max(0.f, p[i] * 0.5f + 0.5f));
    }, 1 << 14);
}

// [N, 3, H, W] in [0, 1] -> RGB u8 N x H x W x 3 (round half up, as (x * 255).round()).
std::vector<uint8_t> to_rgb8(const Tensor& img, int64_t first, int64_t count) {
    const int64_t H = img.size(2), W = img.size(3), HW = H * W;
    std::vector<uint8_t> out(static_cast<size_t>(count * HW * 3));
    const float* p = img.f32();
    parallel_for(count, [&](int64_t a, int64_t b, int) {
        for (int64_t f = a; f < b; ++f)
            for (int c = 0; c < 3; ++c) {
                const float* src = p + ((first + f) * 3 + c) * HW;
                uint8_t* dst = out.data() + f * HW * 3 + c;
                for (int64_t i = 0; i < HW; ++i) dst[i * 3] = static_cast<uint8_t>(std::lround(src[i] * 255.f));
            }
    });
    return out;
}

Tensor repeat_batch(const Tensor& x, int times) {
    std::vector<Tensor> v(static_cast<size_t>(times), x);
    return ops::concat(v, 0);
}
}  // namespace

Tensor sample_extension_chunk(Model& m, const Tensor& x_T, const Tensor& ctx, const Tensor& cond2,
                              const ExtensionSampling& s, const runtime::NoiseFn& noise,
                              const std::function<void(int, int64_t)>& before_step, const runtime::StepCallback& on_step,
                              double* ms_cam, double* ms_unet) {
    ST2V_CHECK_ARG(x_T.ndim() == 4, "sample_extension_chunk: x_T must be [F, C, h, w], got %s", x_T.desc().c_str());
    ST2V_CHECK_ARG(ctx.ndim() == 3 && ctx.size(0) == 2, "sample_extension_chunk: ctx must be [2, L, D] ([uncond, cond]), got %s",
                   ctx.desc().c_str());
    ST2V_CHECK_ARG(cond2.ndim() == 4 && cond2.size(0) % 2 == 0, "sample_extension_chunk: cond frames must be [2 * Fc, 3, H, W], got %s",
                   cond2.desc().c_str());
    const int64_t F = x_T.size(0);
    int i = 0;
    return runtime::ddim_sample(
        x_T, s.steps, s.eta,
        [&](const Tensor& xf, int64_t t) {
            if (before_step) before_step(i, t);
            ++i;
            Tensor X = repeat_batch(to_bcfhw(xf, F), 2);  // [2, 4, F, h, w]
            Tensor eps = m.eps_extension(X, static_cast<float>(t), ctx, cond2, ms_cam, ms_unet);
            return to_bfchw(runtime::cfg_combine_batch(eps, s.guidance));  // [F, 4, h, w]
        },
        noise, on_step);
}

Engine::Engine(int threads) : pool_(threads) {}
Engine::~Engine() = default;

Engine::BusyGuard::BusyGuard(Engine& e) : e_(e) {
    bool expected = false;
    ST2V_CHECK(e.busy_.compare_exchange_strong(expected, true), Code::kBusy,
               "the engine is busy with another operation (one at a time per engine)");
    e.op_mu_.lock();
    e.cancel_.store(false);
}
Engine::BusyGuard::~BusyGuard() {
    e_.op_mu_.unlock();
    e_.busy_.store(false);
}

void Engine::release() {
    cancel_.store(true);
    std::lock_guard<std::mutex> lk(op_mu_);  // waits for a running operation to stop
    model_.reset();
    arena_.trim();
}

ModelInfo Engine::load(const std::string& dir, const LoadOptions& opts) {
    PoolScope ps(&pool_);
    model_.reset();
    arena_.trim();
    model_ = dir.empty() ? make_default_model() : load_model_dir(dir, opts);
    ST2V_CHECK_ARG(opts.backend == "cpu" || opts.backend == "cuda", "load: backend must be cpu or cuda");
    if (opts.backend == "cuda") {
        try {
            model_->use_cuda(opts.cuda_dtype);
        } catch (...) {
            model_.reset();
            throw;
        }
    }
    return model_->info;
}

Summary Engine::generate(const GenerateOptions& o, const std::function<void(Chunk&&)>& on_chunk,
                         const std::function<void(const Progress&)>& on_progress) {
    ST2V_CHECK(model_ != nullptr, Code::kInvalidArgument, "generate: no model loaded (call load() first)");
    Model& m = *model_;
    const ModelInfo& mi = m.info;
    ST2V_CHECK(mi.has_extension, Code::kUnsupported, "generate: the model has no StreamingT2V extension (CAM + APM)");
    ST2V_CHECK(mi.has_base, Code::kUnsupported,
               "generate: the model has no stage-1 base model to make the first chunk");
    const int F = mi.chunk_frames, Fc = mi.cond_frames, step_new = F - Fc;
    ST2V_CHECK_ARG(o.frames >= 1, "generate: frames must be >= 1");
    // 16 + 8 (n - 1) frames are made; the last chunk is cut so that exactly o.frames are delivered.
    const int chunks = o.frames <= F ? 1 : 1 + (o.frames - F + step_new - 1) / step_new;
    auto cancelled = [&] { if (cancel_.load()) ST2V_THROW(Code::kCancelled, "generation cancelled"); };

    PoolScope ps(&pool_);
    ArenaScope as(&arena_);
    arena_.reset_peak();
    Summary sum;
    const double t_start = now_ms();

    // ---- text (once per video) ----
    double t0 = now_ms();
    on_progress({"text", 0, chunks, 0, 1});
    sum.prompt_ids = o.prompt_ids.empty() ? m.tokenize(o.prompt) : o.prompt_ids;
    sum.negative_ids = o.negative_ids.empty() ? m.tokenize(o.negative) : o.negative_ids;
    Tensor text_pos = m.encode_text(sum.prompt_ids);    // [1, 77, D]
    Tensor text_neg = m.encode_text(sum.negative_ids);  // [1, 77, D]
    Tensor ctx77 = ops::concat({text_neg, text_pos}, 0);  // [2, 77, D], CFG order [uncond, cond]
    // architecture.md §1.1: the official stage 1 (ModelScope pipeline) is called without a negative prompt, so its
    // uncond branch encodes "". Applied when the separate stage-1 model runs.
    Tensor ctx_base = ctx77;
    if (mi.stage1_model)
        ctx_base = ops::concat({m.encode_text(o.empty_ids.empty() ? m.tokenize("") : o.empty_ids), text_pos}, 0);
    const double ms_text = now_ms() - t0;
    cancelled();

    const int64_t h = mi.height / 8, w = mi.width / 8;
    // ---- chunk 0: stage-1 base model (DPM-Solver++ 2M, its own CPU generator seeded with `seed`) ----
    Tensor prev;  // previous chunk's decoded frames [F, 3, H, W] in [0, 1]
    {
        Chunk c;
        runtime::TorchGenerator gen(o.seed);
        Tensor x = to_bfchw(gen.randn({1, mi.latent_channels, F, h, w}));  // [F, 4, h, w]
        double tu = 0;
        int i = 0;
        // progress after each finished step (the API's GenerateProgress.step counts steps done); cancellation is
        // checked before each step and before a finished step is reported (no step is reported after a cancel)
        x = runtime::dpmpp_2m_sample(x, o.base_steps, [&](const Tensor& xf, int64_t t) {
            cancelled();
            double a = now_ms();
            Tensor X = repeat_batch(to_bcfhw(xf, F), 2);  // [2, 4, F, h, w]
            Tensor eps = runtime::cfg_combine_batch(m.eps_base(X, static_cast<float>(t), ctx_base), o.base_guidance);
            tu += now_ms() - a;
            return to_bfchw(eps);  // [F, 4, h, w]
        }, [&](int, int64_t, const Tensor&) {
            cancelled();
            on_progress({"stage1", 0, chunks, ++i, o.base_steps});
            return true;
        });
        cancelled();
        double a = now_ms();
        on_progress({"decode", 0, chunks, 0, 1});
        // Without an extension chunk only the delivered frames are decoded (the VAE decodes each frame alone).
        const Tensor xd = chunks == 1 && o.frames < F ? x.slice(0, 0, o.frames).contiguous() : x;
        prev = m.decode(ops::scale(xd, 1.f / m.vae_scale()));  // [F (or frames), 3, H, W]
        to_unit_range(prev);
        c.ms_decode = now_ms() - a;
        c.ms_unet = tu;
        sum.ms_stage1 = tu;
        c.ms_text = ms_text;
        const int keep = std::min(F, o.frames);
        c.rgb = to_rgb8(prev, 0, keep);
        c.index = 0;
        c.frames = keep;
        c.height = static_cast<int>(prev.size(2));
        c.width = static_cast<int>(prev.size(3));
        c.ms_total = now_ms() - t_start;
        sum.ms_text += c.ms_text;
        sum.ms_unet += c.ms_unet;
        sum.ms_decode += c.ms_decode;
        on_chunk(std::move(c));
        sum.frames += keep;
    }

    // ---- APM: anchor = frame 0 of chunk 0 (in [-1, 1]); uncond uses the all-zeros image ----
    Tensor anchor = ops::scale(ops::add(prev.slice(0, 0, 1).contiguous(), Tensor::full({1, 3, prev.size(2), prev.size(3)}, -0.5f)), 2.f);
    double t_img = now_ms();
    Tensor img_tok = chunks > 1 ? m.resample(m.encode_image(anchor)) : Tensor();                         // [1, 16, D]
    Tensor img_unc = chunks > 1 ? m.resample(m.encode_image(Tensor::zeros(anchor.shape()))) : Tensor();  // [1, 16, D]
    const double ms_image = now_ms() - t_img;
    if (chunks == 1) {
        sum.chunks = 1;
        sum.ms_total = now_ms() - t_start;
        sum.peak_arena_bytes = arena_.peak_bytes();
        return sum;
    }
    Tensor ctx = ops::concat({ops::concat({text_neg, img_unc}, 1), ops::concat({text_pos, img_tok}, 1)}, 0);  // [2, 93, D]

    // ---- extension chunks (one CPU generator for the whole video, as the official stage 2) ----
    runtime::TorchGenerator gen(o.seed);
    for (int k = 1; k < chunks; ++k) {
        cancelled();
        const double tc = now_ms();
        Chunk c;
        // CAM input: previous chunk's last Fc frames in [-1, 1], for both CFG halves.
        Tensor cond = ops::scale(ops::add(prev.slice(0, F - Fc, F).contiguous(),
                                          Tensor::full({Fc, 3, prev.size(2), prev.size(3)}, -0.5f)), 2.f);
        Tensor cond2 = repeat_batch(cond, 2);  // [2 * Fc, 3, H, W]
        Tensor x = to_bfchw(gen.randn({1, mi.latent_channels, F, h, w}));  // [F, 4, h, w]
        int i = 0;
        x = sample_extension_chunk(m, x, ctx, cond2, ExtensionSampling{o.steps, o.eta, o.guidance}, runtime::torch_noise(gen),
                                   [&](int, int64_t) { cancelled(); },
                                   [&](int, int64_t, const Tensor&) {
                                       cancelled();
                                       on_progress({"extend", k, chunks, ++i, o.steps});
                                       return true;
                                   },
                                   &c.ms_cam, &c.ms_unet);
        cancelled();
        double a = now_ms();
        on_progress({"decode", k, chunks, 0, 1});
        Tensor frames = m.decode(ops::scale(x, 1.f / m.vae_scale()));  // [F, 3, H, W]
        to_unit_range(frames);
        c.ms_decode = now_ms() - a;
        const int index = F + (k - 1) * step_new;
        const int keep = std::min(step_new, o.frames - index);
        c.rgb = to_rgb8(frames, Fc, keep);  // the new frames Fc.. of the chunk
        c.index = index;
        c.frames = keep;
        if (k == 1) c.ms_image = ms_image;
        c.height = static_cast<int>(frames.size(2));
        c.width = static_cast<int>(frames.size(3));
        c.ms_total = now_ms() - tc;
        prev = frames;
        sum.ms_image += c.ms_image;
        sum.ms_unet += c.ms_unet;
        sum.ms_cam += c.ms_cam;
        sum.ms_decode += c.ms_decode;
        on_chunk(std::move(c));
        sum.frames += keep;
    }
    sum.chunks = chunks;
    sum.ms_total = now_ms() - t_start;
    sum.peak_arena_bytes = arena_.peak_bytes();
    return sum;
}

}  // namespace st2v::engine
