// Module init: the addon's surface is small and typed in lib/native/binding.ts.
#include <napi.h>

#include "backend/backend.h"
#include "core/cpu.h"
#include "core/threadpool.h"
#include "napi/common.h"

namespace st2v::napi {
namespace {

Napi::Value SystemInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const CpuFeatures& f = cpu_features();
    Napi::Object o = Napi::Object::New(env);
    o.Set("version", Napi::String::New(env, "0.1.0"));
    o.Set("backend", Napi::String::New(env, "cpu"));
    o.Set("cpu", Napi::String::New(env, f.brand));
    o.Set("isa", Napi::String::New(env, isa_name(active_isa())));
    o.Set("maxIsa", Napi::String::New(env, isa_name(max_supported_isa())));
    Napi::Array feats = Napi::Array::New(env);
    uint32_t i = 0;
    auto add = [&](bool on, const char* name) { if (on) feats.Set(i++, Napi::String::New(env, name)); };
    add(f.avx2, "avx2"); add(f.fma, "fma"); add(f.f16c, "f16c"); add(f.avx512f, "avx512f");
    add(f.avx512bw, "avx512bw"); add(f.avx512vl, "avx512vl"); add(f.avx512dq, "avx512dq");
    add(f.avx512bf16, "avx512_bf16"); add(f.avx512vnni, "avx512_vnni");
    o.Set("cpuFeatures", feats);
    o.Set("threads", Napi::Number::New(env, current_pool().size()));
    o.Set("hardwareThreads", Napi::Number::New(env, hardware_threads()));
    // "not built", "built, no device: <why>", or the GPU (backend/backend.h; never throws)
    const backend::CudaStatus cst = backend::cuda_status();
    Napi::Object cuda = Napi::Object::New(env);
    cuda.Set("compiled", Napi::Boolean::New(env, cst.compiled));
    cuda.Set("available", Napi::Boolean::New(env, cst.available));
    cuda.Set("message", Napi::String::New(env, cst.message));
    o.Set("cuda", cuda);
    return o;
}

Napi::Value ErrorCodes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env);
    for (int c = 1; c < code_count(); ++c) a.Set(static_cast<uint32_t>(c - 1), Napi::String::New(env, code_name(static_cast<Code>(c))));
    return a;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsNumber(), "setThreads(n): n must be a number");
        int n = info[0].As<Napi::Number>().Int32Value();
        ST2V_CHECK_ARG(n >= 0 && n <= 1024, "setThreads(n): n must be in [0, 1024] (0 = hardware threads)");
        set_default_threads(n);
        return Napi::Number::New(info.Env(), current_pool().size());
    });
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsString(), "setIsa(name): name must be a string");
        std::string s = info[0].As<Napi::String>().Utf8Value();
        Isa isa;
        if (s == "portable") isa = Isa::kPortable;
        else if (s == "avx2") isa = Isa::kAvx2;
        else if (s == "avx512") isa = Isa::kAvx512;
        else ST2V_THROW(Code::kInvalidArgument, "setIsa: unknown ISA '%s' (portable, avx2, avx512)", s.c_str());
        return Napi::Boolean::New(info.Env(), set_isa(isa));
    });
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
    exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
    exports.Set("errorCodes", Napi::Function::New(env, ErrorCodes, "errorCodes"));
    exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
    exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
    run_registered(env, exports);
    return exports;
}

}  // namespace st2v::napi

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return st2v::napi::Init(env, exports); }
NODE_API_MODULE(streamingt2v, InitAddon)
