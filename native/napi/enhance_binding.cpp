// enhanceVideo: stage 3 (models/enhancer/pipeline.h) for JavaScript. Contract in lib/native/binding.ts:
//
//   const job = native.enhanceVideo(modelDir | null, frames, opts, onFrames, onProgress);
//   job.cancel();                 // ERR_CANCELLED, checked between chunks / frames
//   const summary = await job.promise;
//
// frames: {data: Float32Array, shape: [F, 3, H, W]} in [-1, 1], or {data: Uint8Array, shape: [F, H, W, 3]}
// (rgb24 as ffmpeg decodes it). Enhanced frames are delivered in order as RGB u8 [n, H, W, 3] through one
// thread-safe function (with the progress events, so JS sees them in production order); the promise resolves
// after the last delivery. The model folder must hold the enhancer (enhancer.*), the text encoder
// (text_encoder.text_model.*, the OpenCLIP text tower) and the VAE (vae.*); a folder without enhancer.* tensors
// rejects with ERR_WEIGHTS_MISSING. There is no trained built-in enhancer: modelDir null rejects with
// ERR_WEIGHTS_MISSING too, unless opts.untrained is true, which selects a tiny enhancer of the real architecture
// with seeded random (UNTRAINED) weights next to the built-in default model's text encoder and VAE (for tests and
// demos of the plumbing; its prompts are tokenised by the default model's byte-level tokenizer from opts.prompt /
// opts.negativePrompt). opts.backend 'cuda' runs the enhancer's denoiser (DeviceVid2VidUNet) and the VAE
// (DeviceAutoencoderKL), f32 resident weights, on the CUDA backend and rejects with ERR_NO_CUDA, before loading
// anything, without a usable one; text encoder, solver and blending stay on the CPU. The summary says which backend ran ({untrained, backend, frames, ...}).
#include <napi.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>

#include "backend/backend.h"
#include "core/arena.h"
#include "engine/default_model.h"
#include "engine/model.h"
#include "io/weights.h"
#include "models/clip/clip.h"
#include "models/enhancer/device_vid2vid.h"
#include "models/enhancer/pipeline.h"
#include "models/vae/device_vae.h"
#include "napi/common.h"

namespace st2v::napi {
namespace {

struct EnhEvent {
    bool is_frames = false;
    std::vector<uint8_t> rgb;
    int64_t index = 0, frames = 0, width = 0, height = 0;
    std::string stage;
    int window = 0, step = 0, steps = 0, chunk = 0, chunks = 0;
    int64_t frames_done = 0;
};

struct EnhCallbacks : PendingEvents {
    Napi::FunctionReference on_frames, on_progress;
};

void enh_call_js(Napi::Env env, Napi::Function, EnhCallbacks* cb, EnhEvent* ev) {
    std::unique_ptr<EnhEvent> owned(ev);
    PendingEvents::Delivered done{cb};
    if (env == nullptr || cb == nullptr || ev == nullptr) return;
    try {
        Napi::Object o = Napi::Object::New(env);
        if (ev->is_frames) {
            if (cb->on_frames.IsEmpty()) return;
            Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, ev->rgb.size());
            if (!ev->rgb.empty()) std::memcpy(ab.Data(), ev->rgb.data(), ev->rgb.size());
            o.Set("data", Napi::Uint8Array::New(env, ev->rgb.size(), ab, 0));
            o.Set("index", static_cast<double>(ev->index));
            o.Set("frames", static_cast<double>(ev->frames));
            o.Set("width", static_cast<double>(ev->width));
            o.Set("height", static_cast<double>(ev->height));
            cb->on_frames.Call({o});
        } else {
            if (cb->on_progress.IsEmpty()) return;
            o.Set("stage", ev->stage);
            o.Set("window", ev->window);
            o.Set("step", ev->step);
            o.Set("steps", ev->steps);
            o.Set("chunk", ev->chunk);
            o.Set("chunks", ev->chunks);
            o.Set("framesDone", static_cast<double>(ev->frames_done));
            cb->on_progress.Call({o});
        }
    } catch (const Napi::Error&) {
        // a throwing user callback must not take the process down (the TS layer wraps callbacks)
    }
}

using EnhTsfn = Napi::TypedThreadSafeFunction<EnhCallbacks, EnhEvent, enh_call_js>;

struct Loaded {
    io::WeightStore w;
    std::unique_ptr<enhancer::Vid2VidUNet> unet;
    std::unique_ptr<vae::AutoencoderKL> vae;
    std::unique_ptr<enc::ClipTextModel> text;
};

// The untrained built-in: the default model's text encoder + VAE (make_tiny_weights) and a random enhancer
// (width 32, levels 1-2, attention at level 0, head 32) whose context width is the tiny text width.
std::unique_ptr<Loaded> builtin_untrained_enhancer(int64_t ff_chunk) {
    engine::TinyConfig c;
    auto L = std::make_unique<Loaded>();
    io::WeightStore all = engine::make_tiny_weights(c);
    for (const std::string& n : all.names())
        if (n.rfind("vae.", 0) == 0 || n.rfind("text_encoder.", 0) == 0) L->w.add(n, all.get(n));
    io::WeightStore e = enhancer::random_vid2vid_weights(32, {1, 2}, 1, 32, 1, c.context_dim, c.seed + 3);
    for (const std::string& n : e.names()) L->w.add("enhancer." + n, e.get(n));
    L->unet = std::make_unique<enhancer::Vid2VidUNet>(L->w, "enhancer.");
    L->unet->set_ff_token_chunk(ff_chunk);
    L->vae = std::make_unique<vae::AutoencoderKL>(L->w, "vae.");
    L->text = std::make_unique<enc::ClipTextModel>(L->w, "text_encoder.text_model.");
    return L;
}

std::unique_ptr<Loaded> load_enhancer(const std::string& dir, int64_t ff_chunk) {
    ST2V_CHECK(!dir.empty(), Code::kWeightsMissing,
               "enhance: no enhancer: the built-in default model has none. Pass a model folder converted with `st2v "
               "convert` that holds the MS-Vid2Vid-XL enhancer (component 'enhancer', enhancer.* tensors from "
               "non_ema_0035000.pth) with its VAE and OpenCLIP text encoder");
    ST2V_CHECK(std::filesystem::is_directory(dir), Code::kNotFound, "enhance: model folder not found: %s", dir.c_str());
    auto L = std::make_unique<Loaded>();
    L->w = io::load_safetensors(dir);
    ST2V_CHECK(!L->w.names_with_prefix("enhancer.").empty(), Code::kWeightsMissing,
               "enhance: model folder %s has no enhancer (component 'enhancer': enhancer.* tensors of MS-Vid2Vid-XL "
               "non_ema_0035000.pth; add it with `st2v convert`)", dir.c_str());
    ST2V_CHECK(!L->w.names_with_prefix("vae.").empty(), Code::kWeightsMissing,
               "enhance: model folder %s has no VAE (component 'vae') for the enhancer", dir.c_str());
    ST2V_CHECK(!L->w.names_with_prefix("text_encoder.text_model.").empty(), Code::kWeightsMissing,
               "enhance: model folder %s has no text encoder (component 'text_encoder') for the enhancer prompt", dir.c_str());
    L->unet = std::make_unique<enhancer::Vid2VidUNet>(L->w, "enhancer.");
    L->unet->set_ff_token_chunk(ff_chunk);
    L->vae = std::make_unique<vae::AutoencoderKL>(L->w, "vae.");
    L->text = std::make_unique<enc::ClipTextModel>(L->w, "text_encoder.text_model.");
    return L;
}

std::vector<int32_t> ids_of(const Napi::Object& o, const char* key) {
    Napi::Value v = o.Get(key);
    ST2V_CHECK_ARG(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array,
                   "enhanceVideo: opts.%s must be an Int32Array of token ids", key);
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    ST2V_CHECK_ARG(a.ElementLength() >= 1 && a.ElementLength() <= 77, "enhanceVideo: opts.%s must hold 1..77 ids", key);
    return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

// [F, H, W, 3] u8 or [F, 3, H, W] f32 -> [F, 3, H, W] f32 in [-1, 1]
Tensor frames_to_f32(const Tensor& t) {
    ST2V_CHECK_ARG(t.ndim() == 4, "enhanceVideo: frames must be 4-D, got %s", t.shape().str().c_str());
    if (t.dtype() == DType::F32) {
        ST2V_CHECK_ARG(t.size(1) == 3, "enhanceVideo: f32 frames must be [F, 3, H, W], got %s", t.shape().str().c_str());
        return t.contiguous();
    }
    ST2V_CHECK_ARG(t.dtype() == DType::U8 && t.size(3) == 3, "enhanceVideo: frames must be f32 [F, 3, H, W] or u8 [F, H, W, 3]");
    const int64_t F = t.size(0), H = t.size(1), W = t.size(2);
    Tensor out = Tensor::empty({F, 3, H, W});
    const uint8_t* s = t.contiguous().data<uint8_t>();
    for (int64_t f = 0; f < F; ++f)
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t i = 0; i < H * W; ++i)
                out.f32()[(f * 3 + c) * H * W + i] = static_cast<float>(s[(f * H * W + i) * 3 + c]) / 127.5f - 1.0f;
    return out;
}

struct Job {
    std::atomic<bool> cancel{false};
};

Napi::Value EnhanceVideo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string dir;
    Tensor frames;
    enhancer::EnhanceOptions o;
    std::vector<int32_t> pids, nids;
    bool untrained = false;
    std::string prompt, negative;
    int64_t ff_chunk = 16384;
    std::string backend_name = "cpu";  // "cuda": the denoiser's forwards on the CUDA backend (f32 resident weights)
    auto job = std::make_shared<Job>();
    Napi::Object handle = Napi::Object::New(env);
    auto reject = [&](Code c, const std::string& msg) {
        auto d = Napi::Promise::Deferred::New(env);
        d.Reject(make_error(env, c, msg).Value());
        handle.Set("promise", d.Promise());
        handle.Set("cancel", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return i.Env().Undefined(); }));
        return handle;
    };
    try {
        if (info.Length() >= 1 && info[0].IsString()) dir = info[0].As<Napi::String>().Utf8Value();
        else ST2V_CHECK_ARG(info.Length() >= 1 && (info[0].IsNull() || info[0].IsUndefined()),
                            "enhanceVideo(modelDir, frames, opts, onFrames, onProgress): modelDir must be a string or null");
        ST2V_CHECK_ARG(info.Length() >= 3 && info[2].IsObject(), "enhanceVideo: opts must be an object");
        frames = frames_to_f32(tensor_from_js(info[1], "frames"));
        Napi::Object opt = info[2].As<Napi::Object>();
        untrained = get_bool(opt, "untrained", false);
        ST2V_CHECK_ARG(!untrained || dir.empty(), "enhanceVideo: opts.untrained selects the built-in enhancer: modelDir must be null");
        if (untrained) {
            prompt = get_string(opt, "prompt", "");
            negative = get_string(opt, "negativePrompt", "");
        } else {
            pids = ids_of(opt, "promptIds");
            nids = ids_of(opt, "negativeIds");
        }
        auto num = [&](const char* k, double def, double lo, double hi) {
            const double v = get_number(opt, k, def);
            ST2V_CHECK_ARG(std::isfinite(v) && v >= lo && v <= hi && std::floor(v) == v, "enhanceVideo: %s must be an integer in [%g, %g]",
                           k, lo, hi);
            return v;
        };
        o.width = static_cast<int64_t>(num("width", 1280, 8, 8192));
        o.height = static_cast<int64_t>(num("height", 720, 8, 8192));
        o.steps = static_cast<int>(num("steps", 30, 1, 1000));
        o.t_start = static_cast<int>(num("tStart", 599, 1, 999));
        o.chunk = static_cast<int64_t>(num("chunk", 24, 2, 1024));
        o.overlap = static_cast<int64_t>(num("overlap", 8, 1, 1023));
        o.window = static_cast<int>(num("window", 0, 0, 1 << 20));
        o.seed = static_cast<uint64_t>(num("seed", 0, 0, 9007199254740991.0));
        o.vae_tile = static_cast<int64_t>(num("vaeTile", 64, 0, 4096));
        ff_chunk = static_cast<int64_t>(num("ffTokenChunk", 16384, 0, 1e12));
        backend_name = get_string(opt, "backend", "cpu");
        ST2V_CHECK_ARG(backend_name == "cpu" || backend_name == "cuda", "enhanceVideo: backend must be cpu or cuda");
        o.guide_scale = static_cast<float>(get_number(opt, "guidanceScale", 7.5));
        o.guide_rescale = static_cast<float>(get_number(opt, "guideRescale", 0.2));
        ST2V_CHECK_ARG(std::isfinite(o.guide_scale) && o.guide_rescale >= 0.f && o.guide_rescale <= 1.f,
                       "enhanceVideo: guidanceScale must be finite and guideRescale in [0, 1]");
    } catch (const Error& e) {
        return reject(e.code(), e.what());
    }
    auto cbs = new EnhCallbacks();
    if (info.Length() >= 4 && info[3].IsFunction()) cbs->on_frames = Napi::Persistent(info[3].As<Napi::Function>());
    if (info.Length() >= 5 && info[4].IsFunction()) cbs->on_progress = Napi::Persistent(info[4].As<Napi::Function>());
    EnhTsfn tsfn = EnhTsfn::New(env, "st2v:enhance", 0, 1, cbs, [](Napi::Env, void*, EnhCallbacks* c) { delete c; });
    auto holder = std::make_shared<EnhTsfn>(tsfn);
    auto summary = std::make_shared<std::pair<int64_t, size_t>>(0, 0);  // frames, peak tensor bytes
    Napi::Promise p = run_async(
        env, "st2v:enhance",
        [dir, frames, o, pids, nids, untrained, prompt, negative, ff_chunk, backend_name, job, holder, cbs, summary] {
            struct Release {
                std::shared_ptr<EnhTsfn> t;
                ~Release() { t->Release(); }
            } rel{holder};
            auto send = [&](EnhEvent* ev) { cbs->send(*holder, ev); };
            PendingEvents::WaitAll wait{cbs};
            if (backend_name == "cuda") (void)backend::cuda();  // ERR_NO_CUDA before loading anything
            std::unique_ptr<Loaded> L = untrained ? builtin_untrained_enhancer(ff_chunk) : load_enhancer(dir, ff_chunk);
            // the denoiser and the VAE on the device: bound by the CPU models (their checks), uploaded once; the text
            // encoder, solver and blending stay on the CPU
            std::unique_ptr<enhancer::DeviceVid2VidUNet> dev;
            std::unique_ptr<vae::DeviceAutoencoderKL> dev_vae;
            if (backend_name == "cuda") {
                dev = std::make_unique<enhancer::DeviceVid2VidUNet>(*L->unet, DType::F32);
                dev_vae = std::make_unique<vae::DeviceAutoencoderKL>(*L->vae);
            }
            std::vector<int32_t> p_ids = pids, n_ids = nids;
            if (untrained) {  // the default model's byte-level tokenizer; "<prompt>, " as the official
                std::unique_ptr<engine::Model> dm = engine::make_default_model();
                p_ids = dm->tokenize(prompt + ", ");
                n_ids = dm->tokenize(negative);
            }
            const Tensor y = enhancer::encode_prompt(*L->text, p_ids), yn = enhancer::encode_prompt(*L->text, n_ids);
            const size_t base = tensor_bytes_live();
            tensor_bytes_reset_peak();
            enhancer::EnhanceStream s(
                {L->unet.get(), L->vae.get(), dev.get(), dev_vae.get()}, y, yn, o,
                [&](const Tensor& f, int64_t first) {
                    auto* ev = new EnhEvent();
                    ev->is_frames = true;
                    ev->index = first;
                    ev->frames = f.size(0);
                    ev->height = f.size(2);
                    ev->width = f.size(3);
                    const int64_t HW = ev->height * ev->width;
                    ev->rgb.resize(static_cast<size_t>(ev->frames * HW * 3));
                    for (int64_t n = 0; n < ev->frames; ++n)
                        for (int64_t c = 0; c < 3; ++c) {
                            const float* src = f.f32() + (n * 3 + c) * HW;
                            uint8_t* dst = ev->rgb.data() + n * HW * 3 + c;
                            for (int64_t i = 0; i < HW; ++i) {
                                const float v = std::min(1.f, std::max(0.f, (src[i] + 1.f) * 0.5f));
                                dst[i * 3] = static_cast<uint8_t>(std::lround(v * 255.f));
                            }
                        }
                    send(ev);
                },
                [&](const enhancer::EnhanceProgress& pr) {
                    auto* ev = new EnhEvent();
                    ev->stage = pr.stage;
                    ev->window = pr.window;
                    ev->step = pr.step;
                    ev->steps = pr.steps;
                    ev->chunk = pr.chunk;
                    ev->chunks = pr.chunks;
                    ev->frames_done = pr.frames_done;
                    send(ev);
                },
                &job->cancel);
            // push as stage-2 chunks would arrive: one chunk's worth of new frames at a time
            const int64_t step = std::max<int64_t>(1, o.chunk - o.overlap);
            for (int64_t i = 0; i < frames.size(0); i += step)
                s.push(frames.slice(0, i, std::min(frames.size(0), i + step)));
            summary->first = s.finish();
            summary->second = tensor_bytes_peak() - base;
        },
        [summary, untrained, backend_name](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            r.Set("untrained", untrained);
            r.Set("backend", backend_name);
            r.Set("frames", static_cast<double>(summary->first));
            r.Set("peakTensorBytes", static_cast<double>(summary->second));
            return r;
        },
        {info[1]});
    handle.Set("promise", p);
    handle.Set("cancel", Napi::Function::New(env, [job](const Napi::CallbackInfo& i) {
                   job->cancel = true;
                   return i.Env().Undefined();
               }));
    return handle;
}

void Init(Napi::Env env, Napi::Object exports) { exports.Set("enhanceVideo", Napi::Function::New(env, EnhanceVideo)); }

Registrar reg(Init);

}  // namespace
}  // namespace st2v::napi
