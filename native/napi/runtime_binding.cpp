// Runtime bindings (tests, `st2v verify`): PyTorch-compatible generator draws, Python random, sampler
// schedules and the randomized-blending kernel.
//   torchRandom(seed, draws: [{op: 'randn'|'rand', shape}], path?: 'avx2'|'default') -> Promise<NativeTensor[]>
//       one torch.Generator().manual_seed(seed), draws in order (the state continues across draws)
//   pyRandint(seed, a, b, count) -> number[]        random.seed(seed); [random.randint(a, b) for _ in range(count)]
//   samplerSchedule(kind: 'ddim'|'dpmpp'|'enhancer', steps) -> {timesteps: number[], sigmas: number[]}
//   randomizedBlend(chunks [n, B, C, F, H, W] f32, seamOffsets: number[], chunk, overlap) -> Promise<NativeTensor>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "napi/common.h"
#include "runtime/runtime.h"

namespace st2v::napi {
namespace {

uint64_t get_seed(const Napi::Value& v, const char* fn) {
    if (v.IsBigInt()) {
        bool lossless = false;
        const uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
        ST2V_CHECK_ARG(lossless, "%s: seed must fit in 64 bits", fn);
        return s;
    }
    ST2V_CHECK_ARG(v.IsNumber(), "%s: seed must be a number or bigint", fn);
    const double d = v.As<Napi::Number>().DoubleValue();
    ST2V_CHECK_ARG(std::isfinite(d) && d >= 0 && d <= 9007199254740991.0 && std::floor(d) == d,
                   "%s: seed must be a non-negative safe integer", fn);
    return static_cast<uint64_t>(d);
}

int64_t get_int(const Napi::Value& v, const char* what, double lo, double hi) {
    ST2V_CHECK_ARG(v.IsNumber(), "%s must be a number", what);
    const double d = v.As<Napi::Number>().DoubleValue();
    ST2V_CHECK_ARG(std::isfinite(d) && std::floor(d) == d && d >= lo && d <= hi, "%s must be an integer in [%g, %g]", what,
                   lo, hi);
    return static_cast<int64_t>(d);
}

Shape get_shape(const Napi::Value& v, const char* what) {
    ST2V_CHECK_ARG(v.IsArray(), "%s must be an array of integers", what);
    Napi::Array a = v.As<Napi::Array>();
    ST2V_CHECK_ARG(a.Length() <= static_cast<uint32_t>(kMaxDims), "%s has more than %d dims", what, kMaxDims);
    std::vector<int64_t> d;
    double numel = 1;
    for (uint32_t i = 0; i < a.Length(); ++i) {
        d.push_back(get_int(a.Get(i), what, 0, 1e9));
        numel *= static_cast<double>(d.back());
    }
    ST2V_CHECK_ARG(numel <= 1e9, "%s: too many elements", what);
    return Shape(d);
}

Napi::Value TorchRandom(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct Job {
        uint64_t seed = 0;
        runtime::RandnPath path = runtime::RandnPath::kAvx2;
        std::vector<std::pair<bool, Shape>> draws;  // (randn?, shape)
        std::vector<Tensor> out;
    };
    auto job = std::make_shared<Job>();
    Napi::Value early = guard(env, [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 2, "torchRandom(seed, draws, path?): missing arguments");
        job->seed = get_seed(info[0], "torchRandom");
        ST2V_CHECK_ARG(info[1].IsArray(), "torchRandom: draws must be an array of {op, shape}");
        Napi::Array a = info[1].As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i) {
            Napi::Value e = a.Get(i);
            ST2V_CHECK_ARG(e.IsObject(), "torchRandom: draws[%u] must be an object {op, shape}", i);
            Napi::Object o = e.As<Napi::Object>();
            const std::string op = get_string(o, "op", "randn");
            ST2V_CHECK_ARG(op == "randn" || op == "rand", "torchRandom: draws[%u].op must be 'randn' or 'rand'", i);
            job->draws.emplace_back(op == "randn", get_shape(o.Get("shape"), "torchRandom: draws[].shape"));
        }
        if (info.Length() >= 3 && !info[2].IsUndefined()) {
            ST2V_CHECK_ARG(info[2].IsString(), "torchRandom: path must be 'avx2' or 'default'");
            const std::string p = info[2].As<Napi::String>().Utf8Value();
            ST2V_CHECK_ARG(p == "avx2" || p == "default", "torchRandom: path must be 'avx2' or 'default', got '%s'", p.c_str());
            job->path = p == "avx2" ? runtime::RandnPath::kAvx2 : runtime::RandnPath::kDefault;
        }
        return env.Undefined();
    });
    if (env.IsExceptionPending()) return early;
    return run_async(
        env, "st2v.torchRandom",
        [job] {
            runtime::TorchGenerator g(job->seed, job->path);
            for (auto& d : job->draws) job->out.push_back(d.first ? g.randn(d.second) : g.rand(d.second));
        },
        [job](Napi::Env e) -> Napi::Value {
            Napi::Array arr = Napi::Array::New(e, job->out.size());
            for (size_t i = 0; i < job->out.size(); ++i) arr.Set(static_cast<uint32_t>(i), tensor_to_js(e, job->out[i]));
            return arr;
        });
}

Napi::Value PyRandint(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 4, "pyRandint(seed, a, b, count): missing arguments");
        const uint64_t seed = get_seed(info[0], "pyRandint");
        const int64_t a = get_int(info[1], "pyRandint: a", -9007199254740991.0, 9007199254740991.0);
        const int64_t b = get_int(info[2], "pyRandint: b", -9007199254740991.0, 9007199254740991.0);
        const int64_t n = get_int(info[3], "pyRandint: count", 0, 1e7);
        ST2V_CHECK_ARG(a <= b, "pyRandint: empty range a > b");
        runtime::PyRandom rng(static_cast<int64_t>(seed));
        Napi::Array out = Napi::Array::New(info.Env(), static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(rng.randint(a, b))));
        return out;
    });
}

Napi::Value SamplerSchedule(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        Napi::Env env = info.Env();
        ST2V_CHECK_ARG(info.Length() >= 2 && info[0].IsString(), "samplerSchedule(kind, steps): kind must be a string");
        const std::string kind = info[0].As<Napi::String>().Utf8Value();
        const int steps = static_cast<int>(get_int(info[1], "samplerSchedule: steps", 1, 1000));
        std::vector<double> ts, sg;
        if (kind == "ddim") {
            runtime::DdimScheduler s;
            s.set_timesteps(steps);
            for (int64_t t : s.timesteps()) ts.push_back(static_cast<double>(t));
        } else if (kind == "dpmpp") {
            runtime::DpmSolverSchedule s = runtime::dpmpp_schedule(steps);
            for (int64_t t : s.timesteps) ts.push_back(static_cast<double>(t));
            for (float v : s.sigmas) sg.push_back(v);
        } else if (kind == "enhancer") {
            runtime::EnhancerSchedule s;
            for (float v : s.solver_sigmas(steps, 599, 0)) sg.push_back(v);
            for (size_t i = 0; i + 1 < sg.size(); ++i) ts.push_back(static_cast<double>(s.sigma_to_timestep(static_cast<float>(sg[i]))));
        } else {
            ST2V_THROW(Code::kInvalidArgument, "samplerSchedule: kind must be 'ddim', 'dpmpp' or 'enhancer', got '%s'", kind.c_str());
        }
        Napi::Object o = Napi::Object::New(env);
        Napi::Array a = Napi::Array::New(env, ts.size()), b = Napi::Array::New(env, sg.size());
        for (size_t i = 0; i < ts.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, ts[i]));
        for (size_t i = 0; i < sg.size(); ++i) b.Set(static_cast<uint32_t>(i), Napi::Number::New(env, sg[i]));
        o.Set("timesteps", a);
        o.Set("sigmas", b);
        return o;
    });
}

Napi::Value RandomizedBlend(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct Job {
        Tensor chunks;
        std::vector<int64_t> r;
        int64_t chunk = 24, overlap = 8;
        Tensor out;
    };
    auto job = std::make_shared<Job>();
    Napi::Value early = guard(env, [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 2, "randomizedBlend(chunks, seamOffsets, chunk?, overlap?): missing arguments");
        job->chunks = tensor_from_js(info[0], "randomizedBlend: chunks");
        ST2V_CHECK_ARG(info[1].IsArray(), "randomizedBlend: seamOffsets must be an array of integers");
        Napi::Array a = info[1].As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i) job->r.push_back(get_int(a.Get(i), "randomizedBlend: seamOffsets[]", 0, 1e6));
        if (info.Length() >= 3 && !info[2].IsUndefined()) job->chunk = get_int(info[2], "randomizedBlend: chunk", 1, 1e6);
        if (info.Length() >= 4 && !info[3].IsUndefined()) job->overlap = get_int(info[3], "randomizedBlend: overlap", 0, 1e6);
        return env.Undefined();
    });
    if (env.IsExceptionPending()) return early;
    return run_async(
        env, "st2v.randomizedBlend",
        [job] { job->out = runtime::randomized_blend(job->chunks, job->r, job->chunk, job->overlap); },
        [job](Napi::Env e) -> Napi::Value { return tensor_to_js(e, job->out); });
}

void init(Napi::Env env, Napi::Object exports) {
    exports.Set("torchRandom", Napi::Function::New(env, TorchRandom, "torchRandom"));
    exports.Set("pyRandint", Napi::Function::New(env, PyRandint, "pyRandint"));
    exports.Set("samplerSchedule", Napi::Function::New(env, SamplerSchedule, "samplerSchedule"));
    exports.Set("randomizedBlend", Napi::Function::New(env, RandomizedBlend, "randomizedBlend"));
}

const Registrar reg(init);

}  // namespace
}  // namespace st2v::napi
