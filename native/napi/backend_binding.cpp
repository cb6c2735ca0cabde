// Backend selection from JS (native/backend/backend.h):
//   cudaStatus() -> {compiled, available, message, library, device?}   never throws
//   resolveBackend(name: 'auto'|'cpu'|'cuda') -> 'cpu'|'cuda'           'cuda' without a usable GPU -> ERR_NO_CUDA
#include "backend/backend.h"
#include "napi/common.h"

namespace st2v::napi {
namespace {

Napi::Object cuda_status_js(Napi::Env env) {
    const backend::CudaStatus st = backend::cuda_status();
    Napi::Object o = Napi::Object::New(env);
    o.Set("compiled", Napi::Boolean::New(env, st.compiled));
    o.Set("available", Napi::Boolean::New(env, st.available));
    o.Set("message", Napi::String::New(env, st.message));
    o.Set("library", Napi::String::New(env, st.library));
    if (st.available) {
        const st2v_device_info& d = st.info;
        Napi::Object dev = Napi::Object::New(env);
        dev.Set("name", Napi::String::New(env, d.name));
        dev.Set("computeCapability", Napi::String::New(env, std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)));
        dev.Set("multiprocessors", Napi::Number::New(env, d.sm_count));
        dev.Set("totalMemory", Napi::Number::New(env, static_cast<double>(d.total_mem)));
        dev.Set("driverVersion", Napi::Number::New(env, d.driver_version));
        dev.Set("runtimeVersion", Napi::Number::New(env, d.runtime_version));
        dev.Set("cublasLtVersion", Napi::Number::New(env, static_cast<double>(d.cublaslt_version)));
        dev.Set("cublasLtPath", Napi::String::New(env, d.cublaslt_path));
        dev.Set("build", Napi::String::New(env, d.build));
        o.Set("device", dev);
    }
    return o;
}

Napi::Value CudaStatus(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return cuda_status_js(info.Env()); });
}

Napi::Value ResolveBackend(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsString(), "resolveBackend(name): name must be a string");
        const backend::Kind k = backend::resolve(backend::parse_kind(info[0].As<Napi::String>().Utf8Value()));
        return Napi::String::New(info.Env(), backend::kind_name(k));
    });
}

void init(Napi::Env env, Napi::Object exports) {
    exports.Set("cudaStatus", Napi::Function::New(env, CudaStatus, "cudaStatus"));
    exports.Set("resolveBackend", Napi::Function::New(env, ResolveBackend, "resolveBackend"));
}
const Registrar reg(init);

}  // namespace
}  // namespace st2v::napi
