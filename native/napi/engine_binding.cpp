// NativeEngine: the JS face of st2v::engine::Engine (see lib/native/binding.ts for the typed contract).
//
//   const e = native.createEngine({threads});
//   await e.load(modelDir | null, {dtype});
//   await e.generate(opts, onChunk, onProgress);   // onChunk fires as each chunk finishes, in order
//   e.cancel();  await e.dispose();
//
// Chunks and progress events travel through ONE thread-safe function, so JS sees them in the order the
// engine produced them (chunk k before any progress of chunk k+1). Frame data arrives as a JS-owned
// Uint8Array (transferable to worker threads).
#include <napi.h>

#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "engine/engine.h"
#include "napi/common.h"

namespace st2v::napi {
namespace {

struct Event {
    bool is_chunk = false;
    engine::Chunk chunk;
    engine::Progress progress;
};

Napi::Object timings(Napi::Env env, double text, double image, double unet, double cam, double decode, double total) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("textEncoder", text);
    t.Set("imageEncoder", image);
    t.Set("unet", unet);
    t.Set("cam", cam);
    t.Set("vaeDecode", decode);
    t.Set("total", total);
    return t;
}

struct Callbacks : PendingEvents {
    Napi::FunctionReference on_chunk, on_progress;
};

void call_js(Napi::Env env, Napi::Function, Callbacks* cb, Event* ev) {
    std::unique_ptr<Event> owned(ev);
    PendingEvents::Delivered done{cb};
    if (env == nullptr || cb == nullptr || ev == nullptr) return;
    try {
        if (ev->is_chunk) {
            if (cb->on_chunk.IsEmpty()) return;
            const engine::Chunk& c = ev->chunk;
            Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, c.rgb.size());
            if (!c.rgb.empty()) std::memcpy(ab.Data(), c.rgb.data(), c.rgb.size());
            Napi::Object o = Napi::Object::New(env);
            o.Set("data", Napi::Uint8Array::New(env, c.rgb.size(), ab, 0));
            o.Set("index", c.index);
            o.Set("frames", c.frames);
            o.Set("height", c.height);
            o.Set("width", c.width);
            o.Set("timings", timings(env, c.ms_text, c.ms_image, c.ms_unet, c.ms_cam, c.ms_decode, c.ms_total));
            cb->on_chunk.Call({o});
        } else {
            if (cb->on_progress.IsEmpty()) return;
            const engine::Progress& p = ev->progress;
            Napi::Object o = Napi::Object::New(env);
            o.Set("stage", p.stage);
            o.Set("chunk", p.chunk);
            o.Set("chunks", p.chunks);
            o.Set("step", p.step);
            o.Set("steps", p.steps);
            cb->on_progress.Call({o});
        }
    } catch (const Napi::Error& e) {
        // A throwing user callback must not take the process down; it is reported as an uncaught exception
        // by Node only if we rethrow. Swallow and let the TS layer (which wraps callbacks) handle errors.
        (void)e;
    }
}

using Tsfn = Napi::TypedThreadSafeFunction<Callbacks, Event, call_js>;

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "NativeEngine",
                           {InstanceMethod("load", &EngineWrap::Load), InstanceMethod("generate", &EngineWrap::Generate),
                            InstanceMethod("cancel", &EngineWrap::Cancel), InstanceMethod("dispose", &EngineWrap::Dispose),
                            InstanceMethod("memory", &EngineWrap::Memory)});
    }

    explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
        Napi::Env env = info.Env();
        int threads = 0;
        if (info.Length() >= 1 && info[0].IsObject()) {
            guard(env, [&]() -> Napi::Value {
                threads = static_cast<int>(get_number(info[0].As<Napi::Object>(), "threads", 0));
                ST2V_CHECK_ARG(threads >= 0 && threads <= 1024, "threads must be in [0, 1024]");
                return env.Undefined();
            });
        }
        if (threads == 0) threads = hardware_threads();
        engine_ = std::make_shared<engine::Engine>(threads);
    }

  private:
    std::shared_ptr<engine::Engine> engine_;
    bool disposed_ = false;
    int default_steps_ = 50;  // the loaded model's default (the untrained built-in model uses fewer)

    Napi::Value rejected(Napi::Env env, Code c, const std::string& msg) {
        auto d = Napi::Promise::Deferred::New(env);
        d.Reject(make_error(env, c, msg).Value());
        return d.Promise();
    }

    Napi::Value Load(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        if (disposed_) return rejected(env, Code::kDisposed, "engine has been disposed");
        std::string dir;
        engine::LoadOptions opts;
        try {
            if (info.Length() >= 1 && info[0].IsString()) dir = info[0].As<Napi::String>().Utf8Value();
            else ST2V_CHECK_ARG(info.Length() == 0 || info[0].IsNull() || info[0].IsUndefined(),
                                "load(modelDir): modelDir must be a string or null");
            if (info.Length() >= 2 && info[1].IsObject()) {
                opts.dtype = get_string(info[1].As<Napi::Object>(), "dtype", "auto");
                ST2V_CHECK_ARG(opts.dtype == "auto" || opts.dtype == "f32" || opts.dtype == "f16" || opts.dtype == "bf16",
                               "load: dtype must be auto, f32, f16 or bf16");
                opts.backend = get_string(info[1].As<Napi::Object>(), "backend", "cpu");
                ST2V_CHECK_ARG(opts.backend == "cpu" || opts.backend == "cuda", "load: backend must be cpu or cuda");
                opts.cuda_dtype = get_string(info[1].As<Napi::Object>(), "cudaDtype", "f32");
                ST2V_CHECK_ARG(opts.cuda_dtype == "f32" || opts.cuda_dtype == "bf16", "load: cudaDtype must be f32 or bf16");
            }
        } catch (const Error& e) {
            return rejected(env, e.code(), e.what());
        }
        auto eng = engine_;
        auto info_out = std::make_shared<engine::ModelInfo>();
        return run_async(
            env, "st2v:load",
            [eng, dir, opts, info_out] {
                engine::Engine::BusyGuard g(*eng);
                *info_out = eng->load(dir, opts);
            },
            [this, info_out, dir](Napi::Env env) -> Napi::Value {
                const engine::ModelInfo& m = *info_out;
                default_steps_ = m.untrained ? 8 : 50;  // `this` is kept alive by the worker's reference
                Napi::Object o = Napi::Object::New(env);
                o.Set("name", m.name);
                o.Set("description", m.description);
                o.Set("untrained", m.untrained);
                o.Set("modelDir", dir.empty() ? env.Null() : Napi::String::New(env, dir));
                o.Set("height", m.height);
                o.Set("width", m.width);
                o.Set("firstChunkFrames", m.chunk_frames);
                o.Set("chunkFrames", m.chunk_frames - m.cond_frames);
                o.Set("overlapFrames", m.cond_frames);
                o.Set("defaultSteps", m.untrained ? 8 : 50);
                o.Set("dtype", "as stored");
                o.Set("weightBytes", static_cast<double>(m.weight_bytes));
                Napi::Array comps = Napi::Array::New(env, m.components.size());
                for (size_t i = 0; i < m.components.size(); ++i) comps.Set(static_cast<uint32_t>(i), m.components[i]);
                o.Set("components", comps);
                return o;
            },
            {Value()});
    }

    static std::vector<int32_t> ids_from(const Napi::Object& o, const char* key) {
        Napi::Value v = o.Get(key);
        if (v.IsUndefined() || v.IsNull()) return {};
        ST2V_CHECK_ARG(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array,
                       "generate: %s must be an Int32Array of token ids", key);
        Napi::Int32Array a = v.As<Napi::Int32Array>();
        return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
    }

    Napi::Value Generate(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        if (disposed_) return rejected(env, Code::kDisposed, "engine has been disposed");
        engine::GenerateOptions g;
        try {
            ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsObject(), "generate(opts, onChunk, onProgress): opts must be an object");
            Napi::Object o = info[0].As<Napi::Object>();
            g.prompt_ids = ids_from(o, "promptIds");
            g.negative_ids = ids_from(o, "negativeIds");
            g.empty_ids = ids_from(o, "emptyIds");
            g.prompt = get_string(o, "prompt", "");
            g.negative = get_string(o, "negativePrompt", "");
            g.frames = static_cast<int>(get_number(o, "frames", g.frames));
            double seed = get_number(o, "seed", static_cast<double>(g.seed));
            ST2V_CHECK_ARG(seed >= 0 && seed <= 9007199254740991.0, "generate: seed must be a non-negative integer");
            g.seed = static_cast<uint64_t>(seed);
            g.steps = static_cast<int>(get_number(o, "steps", default_steps_));  // one step count for both stages
            g.base_steps = g.steps;
            g.guidance = static_cast<float>(get_number(o, "guidanceScale", g.guidance));
            g.eta = static_cast<float>(get_number(o, "eta", g.eta));
            g.base_steps = static_cast<int>(get_number(o, "baseSteps", g.base_steps));
            ST2V_CHECK_ARG(g.steps <= 1000 && g.base_steps <= 1000, "generate: at most 1000 steps");
            g.base_guidance = static_cast<float>(get_number(o, "baseGuidanceScale", g.base_guidance));
            ST2V_CHECK_ARG(g.frames >= 1 && g.steps >= 1 && g.base_steps >= 1, "generate: frames/steps must be >= 1");
        } catch (const Error& e) {
            return rejected(env, e.code(), e.what());
        }
        auto cbs = new Callbacks();
        if (info.Length() >= 2 && info[1].IsFunction()) cbs->on_chunk = Napi::Persistent(info[1].As<Napi::Function>());
        if (info.Length() >= 3 && info[2].IsFunction()) cbs->on_progress = Napi::Persistent(info[2].As<Napi::Function>());
        Tsfn tsfn = Tsfn::New(env, "st2v:events", 0, 1, cbs, [](Napi::Env, void*, Callbacks* c) { delete c; });
        auto eng = engine_;
        auto summary = std::make_shared<engine::Summary>();
        auto tsfn_holder = std::make_shared<Tsfn>(tsfn);
        return run_async(
            env, "st2v:generate",
            [eng, g, summary, tsfn_holder, cbs] {
                struct Release {
                    std::shared_ptr<Tsfn> t;
                    ~Release() { t->Release(); }
                } rel{tsfn_holder};
                engine::Engine::BusyGuard guard(*eng);
                auto send = [&](Event* ev) { cbs->send(*tsfn_holder, ev); };
                PendingEvents::WaitAll wait{cbs};  // also on errors: no event may outlive the call
                *summary = eng->generate(
                    g,
                    [&](engine::Chunk&& c) {
                        auto* ev = new Event();
                        ev->is_chunk = true;
                        ev->chunk = std::move(c);
                        send(ev);
                    },
                    [&](const engine::Progress& p) {
                        auto* ev = new Event();
                        ev->progress = p;
                        send(ev);
                    });
            },
            [summary](Napi::Env env) -> Napi::Value {
                Napi::Object o = Napi::Object::New(env);
                o.Set("frames", summary->frames);
                o.Set("chunks", summary->chunks);
                o.Set("timings", timings(env, summary->ms_text, summary->ms_image, summary->ms_unet, summary->ms_cam,
                                         summary->ms_decode, summary->ms_total));
                o.Set("peakArenaBytes", static_cast<double>(summary->peak_arena_bytes));
                o.Set("stage1Ms", summary->ms_stage1);
                auto ids = [&](const std::vector<int32_t>& v) {
                    Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
                    for (size_t i = 0; i < v.size(); ++i) a[i] = v[i];
                    return a;
                };
                o.Set("promptIds", ids(summary->prompt_ids));
                o.Set("negativeIds", ids(summary->negative_ids));
                return o;
            },
            {Value()});
    }

    Napi::Value Cancel(const Napi::CallbackInfo& info) {
        engine_->cancel();
        return info.Env().Undefined();
    }

    Napi::Value Memory(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        Napi::Object o = Napi::Object::New(env);
        o.Set("arenaPeak", static_cast<double>(engine_->arena_peak()));
        o.Set("arenaCached", static_cast<double>(engine_->arena_cached()));
        o.Set("tensorLive", static_cast<double>(tensor_bytes_live()));
        o.Set("tensorPeak", static_cast<double>(tensor_bytes_peak()));
        return o;
    }

    Napi::Value Dispose(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        disposed_ = true;
        engine_->cancel();
        auto eng = engine_;
        return run_async(
            env, "st2v:dispose", [eng] { eng->release(); }, [](Napi::Env env) -> Napi::Value { return env.Undefined(); },
            {Value()});
    }
};

// Constructor per environment (main thread and worker threads each load the addon).
std::mutex g_ctor_mu;
std::map<napi_env, Napi::FunctionReference*> g_ctors;

Napi::Value CreateEngine(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::FunctionReference* ctor;
    {
        std::lock_guard<std::mutex> lk(g_ctor_mu);
        ctor = g_ctors[env];
    }
    std::vector<napi_value> args;
    for (size_t i = 0; i < info.Length(); ++i) args.push_back(info[i]);
    return ctor->New(args);
}

void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = EngineWrap::Define(env);
    auto* ref = new Napi::FunctionReference(Napi::Persistent(cls));
    {
        std::lock_guard<std::mutex> lk(g_ctor_mu);
        g_ctors[env] = ref;
    }
    napi_env raw = env;
    env.AddCleanupHook([raw, ref] {
        std::lock_guard<std::mutex> lk(g_ctor_mu);
        g_ctors.erase(raw);
        delete ref;
    });
    exports.Set("NativeEngine", cls);
    exports.Set("createEngine", Napi::Function::New(env, CreateEngine, "createEngine"));
}

Registrar reg(Init);

}  // namespace
}  // namespace st2v::napi
