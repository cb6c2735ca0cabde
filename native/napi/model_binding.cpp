// The StreamingT2V model for TypeScript (typed in lib/native/binding.ts):
//
//   await native.verifyReference(dir: string)
//       -> {groups: string[], cases: [{name, maxAbs, maxRef, maxRel, tol, pass, shape: number[], note}]}
//   Runs every registered verify case group (models/common/verify_registry.h) on the reference dump at dir.
//
//   await native.benchStep({dtype: 'f32' | 'f16' | 'bf16', seed, preset: 'mid' | 'tiny', frames, condFrames,
//                           latent, warmup, reps, profile, abSwitch: '' | 'context' | 'stem', abRounds})
//       -> {config, params, weightBytes, buildSeconds, seconds (median of reps), secondsMin, stepSeconds[],
//           warmupSeconds[], flops, gflops (at the median), peakRssBytes, ab?: {switch, onSeconds[], offSeconds[]}}
//   warmup + reps denoising steps (CAM + base UNet, CFG batch 2) on a random-weight model, activations from one
//   Arena as in the engine; peak RSS of the process.
#include <napi.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/profile.h"
#include "models/common/verify_registry.h"
#include "models/streamingt2v/config.h"
#include "napi/common.h"
#include "ops/ops.h"

namespace st2v::napi {
namespace {

Napi::Value VerifyReference(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsString(), "verifyReference: dir must be a string");
        const std::string dir = info[0].As<Napi::String>().Utf8Value();
        auto res = std::make_shared<std::vector<verify::CaseResult>>();
        auto groups = std::make_shared<std::vector<std::string>>(verify::registered_groups());
        return run_async(
            info.Env(), "st2v.verifyReference", [=]() { *res = verify::run_verify(dir); },
            [=](Napi::Env env) -> Napi::Value {
                Napi::Object o = Napi::Object::New(env);
                Napi::Array g = Napi::Array::New(env, groups->size());
                for (size_t i = 0; i < groups->size(); ++i) g.Set(static_cast<uint32_t>(i), (*groups)[i]);
                Napi::Array cases = Napi::Array::New(env, res->size());
                for (size_t i = 0; i < res->size(); ++i) {
                    const verify::CaseResult& r = (*res)[i];
                    Napi::Object c = Napi::Object::New(env);
                    c.Set("name", r.name);
                    c.Set("maxAbs", r.max_abs);
                    c.Set("maxRef", r.max_ref);
                    c.Set("maxRel", r.max_rel);
                    c.Set("tol", r.tol);
                    c.Set("relTol", r.rel_tol);
                    c.Set("pass", r.pass);
                    Napi::Array s = Napi::Array::New(env, r.shape.size());
                    for (size_t k = 0; k < r.shape.size(); ++k) s.Set(static_cast<uint32_t>(k), static_cast<double>(r.shape[k]));
                    c.Set("shape", s);
                    c.Set("note", r.note);
                    cases.Set(static_cast<uint32_t>(i), c);
                }
                o.Set("groups", g);
                o.Set("cases", cases);
                return o;
            });
    });
}

// The CPU op profile's rows (core/profile.h) as [{name, calls, seconds, flop, bytes}].
Napi::Array profile_rows_js(Napi::Env env, const std::vector<ProfileRow>& rows) {
    Napi::Array a = Napi::Array::New(env, rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        Napi::Object r = Napi::Object::New(env);
        r.Set("name", rows[i].name);
        r.Set("calls", static_cast<double>(rows[i].calls));
        r.Set("seconds", rows[i].seconds);
        r.Set("flop", rows[i].flop);
        r.Set("bytes", rows[i].bytes);
        a.Set(static_cast<uint32_t>(i), r);
    }
    return a;
}

struct StepBench {
    std::string config;
    double params = 0, weight_bytes = 0, build_s = 0, flops = 0, peak_rss = 0;
    std::vector<double> warmup_s, step_s;  // every step, in order: the warm-up steps, then the timed ones
    // after each timed step, one more with the same conditioning frames and E_cond from the cache (t2v::ECondCache),
    // as the engine runs every step of a chunk but the first
    std::vector<double> cached_s;
    // with `profile`: one more first step (E_cond computed) with the CPU op profile on (core/profile.h), then a
    // later step of the same chunk (E_cond from the cache: what the other steps of a chunk run), profiled apart
    std::vector<ProfileRow> profile, profile_later;
    double profile_step_s = 0, profile_later_step_s = 0;
    // with `abSwitch` and `abRounds` n: n rounds of two later steps (E_cond cached), one with the switch on (the
    // default) and one with it off, in ABBA order
    std::vector<double> ab_on_s, ab_off_s;
};

Napi::Value BenchStep(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        Napi::Object o = info.Length() >= 1 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
        const std::string dts = get_string(o, "dtype", "f32");
        ST2V_CHECK_ARG(dts == "f32" || dts == "f16" || dts == "bf16", "benchStep: dtype must be f32, f16 or bf16");
        const DType dt = dts == "f32" ? DType::F32 : dts == "f16" ? DType::F16 : DType::BF16;
        const std::string preset = get_string(o, "preset", "mid");
        ST2V_CHECK_ARG(preset == "mid" || preset == "tiny", "benchStep: preset must be 'mid' or 'tiny'");
        const double seed = get_number(o, "seed", 1);
        const int64_t F = static_cast<int64_t>(get_number(o, "frames", 16));
        const int64_t Fc = static_cast<int64_t>(get_number(o, "condFrames", 8));
        const int64_t lat = static_cast<int64_t>(get_number(o, "latent", 32));
        ST2V_CHECK_ARG(F >= 1 && F <= 64 && Fc >= 1 && Fc <= F && lat >= 1 && lat <= 128,
                       "benchStep: need 1 <= condFrames <= frames <= 64 and 1 <= latent <= 128");
        const double reps_d = get_number(o, "reps", 1), warm_d = get_number(o, "warmup", 0);
        ST2V_CHECK_ARG(reps_d >= 1 && reps_d <= 100 && warm_d >= 0 && warm_d <= 100 && reps_d == std::floor(reps_d) &&
                           warm_d == std::floor(warm_d),
                       "benchStep: need integer reps in [1, 100] and warmup in [0, 100]");
        const int reps = static_cast<int>(reps_d), warmup = static_cast<int>(warm_d);
        const bool profile = get_bool(o, "profile", false);
        // the engine's switches an A/B run can flip (each on by default; the same values either way)
        const std::string ab_switch = get_string(o, "abSwitch", "");
        ST2V_CHECK_ARG(ab_switch.empty() || ab_switch == "context" || ab_switch == "stem",
                       "benchStep: abSwitch must be 'context' (t2v::detail::set_context_per_sample) or 'stem' "
                       "(t2v::detail::set_shared_stem), got '%s'", ab_switch.c_str());
        const double ab_d = get_number(o, "abRounds", ab_switch.empty() ? 0 : 8);
        ST2V_CHECK_ARG(ab_d >= 0 && ab_d <= 100 && ab_d == std::floor(ab_d), "benchStep: abRounds must be an integer in [0, 100]");
        const int ab_rounds = ab_switch.empty() ? 0 : static_cast<int>(ab_d);
        bool (*ab_set)(bool) = ab_switch == "stem" ? t2v::detail::set_shared_stem : t2v::detail::set_context_per_sample;
        auto res = std::make_shared<StepBench>();
        return run_async(
            info.Env(), "st2v.benchStep",
            [=]() {
                using clk = std::chrono::steady_clock;
                t2v::St2vConfig c = preset == "mid" ? t2v::St2vConfig::mid() : t2v::St2vConfig::tiny();
                res->config = c.str();
                auto t0 = clk::now();
                io::WeightStore w = t2v::make_random_weights(c, static_cast<uint64_t>(seed), dt);
                t2v::UNet3D unet(w, c.base_prefix);
                t2v::CamNet cam(w, "unet.");
                res->build_s = std::chrono::duration<double>(clk::now() - t0).count();
                for (const std::string& n : w.names()) res->params += static_cast<double>(w.get(n).numel());
                res->weight_bytes = static_cast<double>(w.bytes());
                const int64_t B = 2, T = c.text_tokens + c.image_tokens, D = c.unet.context_dim;
                Tensor x = Tensor::empty({1, 4, F, lat, lat});
                Tensor ctx = Tensor::empty({B, T, D});
                Tensor cond = Tensor::empty({B * Fc, 3, 8 * lat, 8 * lat});
                uint64_t st = 12345;
                auto fill = [&](Tensor& t, float s) {
                    for (int64_t i = 0; i < t.numel(); ++i) {
                        st = st * 6364136223846793005ull + 1442695040888963407ull;
                        t.f32()[i] = s * (static_cast<float>(st >> 40) / 16777216.f * 2.f - 1.f);
                    }
                };
                fill(x, 1.f);
                fill(ctx, 1.f);
                fill(cond, 1.f);
                Tensor X = ops::concat({x, x}, 0);
                // The steps run as the engine runs them: activations from an Arena, so after the first step they
                // reuse the same blocks instead of fresh pages.
                Arena arena;
                ArenaScope scope(&arena);
                // One step at timestep t with E_cond from `econd` (computed on its first use): seconds.
                auto step = [&](t2v::ECondCache& econd, float t) {
                    const auto t1 = clk::now();
                    {  // the step's tensors go back to the arena inside the timed span
                        t2v::CamResiduals r = cam.forward(X, t, ctx, cond, static_cast<int>(Fc), nullptr, &econd.get(cam, cond));
                        Tensor eps = unet.forward(X, t, ctx, &r);
                    }
                    return std::chrono::duration<double>(clk::now() - t1).count();
                };
                for (int i = 0; i < warmup + reps; ++i) {
                    // a chunk's first step (E_cond computed, as the PyTorch peer does at every step) ...
                    t2v::ECondCache econd;
                    (i < warmup ? res->warmup_s : res->step_s).push_back(step(econd, 500.f));
                    if (i < warmup) continue;
                    // ... and a later step of the same chunk (E_cond from the cache)
                    res->cached_s.push_back(step(econd, 480.f));
                    ST2V_CHECK(econd.hits() == 1 && econd.misses() == 1, Code::kInternal,
                               "benchStep: E_cond cache: %lld hits, %lld misses", (long long)econd.hits(),
                               (long long)econd.misses());
                }
                if (ab_rounds > 0) {  // the switch on / off, alternating, the same chunk's later steps
                    t2v::ECondCache econd;
                    step(econd, 500.f);
                    const t2v::detail::SwitchScope scope(ab_set, true);
                    for (int i = 0; i < ab_rounds; ++i)
                        for (int j = 0; j < 2; ++j) {
                            const bool on = (i + j) % 2 == 0;  // ABBA...: drift cancels over pairs
                            scope.set(on);
                            (on ? res->ab_on_s : res->ab_off_s).push_back(step(econd, 480.f));
                        }
                }
                if (profile) {  // after the timed steps, so their times do not include the profile's clock reads
                    t2v::ECondCache econd;
                    // one profiled step: the profile cleared when it starts, its rows read when it ends
                    auto profiled = [&](float t, std::vector<ProfileRow>& rows) {
                        set_cpu_profile(true);
                        double s = 0;
                        try {
                            s = step(econd, t);
                        } catch (...) {
                            set_cpu_profile(false);
                            throw;
                        }
                        set_cpu_profile(false);
                        rows = cpu_profile();
                        return s;
                    };
                    res->profile_step_s = profiled(500.f, res->profile);
                    res->profile_later_step_s = profiled(480.f, res->profile_later);
                }
                res->flops = t2v::step_flops(c, B, F, Fc, lat, lat, T);
                struct rusage ru {};
                getrusage(RUSAGE_SELF, &ru);
                res->peak_rss = static_cast<double>(ru.ru_maxrss) * 1024.0;
            },
            [=](Napi::Env env) -> Napi::Value {
                Napi::Object out = Napi::Object::New(env);
                out.Set("config", res->config);
                out.Set("params", res->params);
                out.Set("weightBytes", res->weight_bytes);
                out.Set("buildSeconds", res->build_s);
                auto median_of = [](std::vector<double> v) {
                    std::sort(v.begin(), v.end());
                    const size_t n = v.size();
                    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
                };
                const double median = median_of(res->step_s);
                auto arr = [&](const std::vector<double>& v) {
                    Napi::Array a = Napi::Array::New(env, v.size());
                    for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
                    return a;
                };
                out.Set("seconds", median);
                out.Set("secondsMin", *std::min_element(res->step_s.begin(), res->step_s.end()));
                if (!res->cached_s.empty()) out.Set("secondsCachedECond", median_of(res->cached_s));
                out.Set("cachedStepSeconds", arr(res->cached_s));
                out.Set("stepSeconds", arr(res->step_s));
                out.Set("warmupSeconds", arr(res->warmup_s));
                out.Set("flops", res->flops);
                out.Set("gflops", res->flops / median / 1e9);
                out.Set("peakRssBytes", res->peak_rss);
                if (!res->ab_on_s.empty()) {
                    Napi::Object ab = Napi::Object::New(env);
                    ab.Set("switch", ab_switch);
                    ab.Set("onSeconds", arr(res->ab_on_s));
                    ab.Set("offSeconds", arr(res->ab_off_s));
                    out.Set("ab", ab);
                }
                if (!res->profile.empty()) {
                    out.Set("profile", profile_rows_js(env, res->profile));
                    out.Set("profileStepSeconds", res->profile_step_s);
                    out.Set("profileLater", profile_rows_js(env, res->profile_later));
                    out.Set("profileLaterStepSeconds", res->profile_later_step_s);
                }
                return out;
            });
    });
}

// setCpuProfile(on): turns the process-wide CPU op profile on (clearing it) or off (core/profile.h).
Napi::Value SetCpuProfile(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsBoolean(), "setCpuProfile: expected a boolean");
        set_cpu_profile(info[0].As<Napi::Boolean>().Value());
        return info.Env().Undefined();
    });
}
// cpuProfile(): the rows so far, by time: [{name, calls, seconds, flop, bytes}].
Napi::Value CpuProfile(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return profile_rows_js(info.Env(), cpu_profile()); });
}

void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("benchStep", Napi::Function::New(env, BenchStep, "benchStep"));
    exports.Set("setCpuProfile", Napi::Function::New(env, SetCpuProfile, "setCpuProfile"));
    exports.Set("cpuProfile", Napi::Function::New(env, CpuProfile, "cpuProfile"));
    exports.Set("verifyReference", Napi::Function::New(env, VerifyReference, "verifyReference"));
}

Registrar reg(Init);

}  // namespace
}  // namespace st2v::napi
