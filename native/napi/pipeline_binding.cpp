// writeRandomModel(dir, {preset, seed, dtype, vocab, untrained}) -> Promise<{config, params, bytes, seconds}>:
// a random-weight StreamingT2V model folder (native/bench/pipeline_bench.h) for the pipeline bench and tests.
#include <napi.h>

#include <memory>

#include "bench/pipeline_bench.h"
#include "napi/common.h"

namespace st2v::napi {
namespace {

Napi::Value WriteRandomModel(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsString(), "writeRandomModel(dir, opts): dir must be a string");
        const std::string dir = info[0].As<Napi::String>().Utf8Value();
        Napi::Object o = info.Length() >= 2 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(info.Env());
        bench::RandomModelSpec s;
        s.preset = get_string(o, "preset", "mid");
        const double seed = get_number(o, "seed", 1);
        ST2V_CHECK_ARG(seed >= 0 && seed <= 9007199254740991.0, "writeRandomModel: seed must be a non-negative integer");
        s.seed = static_cast<uint64_t>(seed);
        const std::string dts = get_string(o, "dtype", "f16");
        ST2V_CHECK_ARG(dts == "f32" || dts == "f16" || dts == "bf16", "writeRandomModel: dtype must be f32, f16 or bf16");
        s.dtype = dts == "f32" ? DType::F32 : dts == "f16" ? DType::F16 : DType::BF16;
        s.vocab = static_cast<int64_t>(get_number(o, "vocab", 514));
        s.untrained = get_bool(o, "untrained", true);
        s.base = get_bool(o, "base", false);
        auto res = std::make_shared<bench::RandomModelInfo>();
        return run_async(
            info.Env(), "st2v.writeRandomModel", [=]() { *res = bench::write_random_model(dir, s); },
            [=](Napi::Env env) -> Napi::Value {
                Napi::Object out = Napi::Object::New(env);
                out.Set("config", res->config);
                out.Set("params", res->params);
                out.Set("bytes", res->bytes);
                out.Set("seconds", res->seconds);
                return out;
            });
    });
}

void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("writeRandomModel", Napi::Function::New(env, WriteRandomModel, "writeRandomModel"));
}

Registrar reg(Init);

}  // namespace
}  // namespace st2v::napi
