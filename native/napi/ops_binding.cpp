// Op-level bindings (tests, benches, tools):
//
//   runOp(name, inputs: NativeTensor[], params?) -> Promise<NativeTensor>
//       one op of native/ops/ops.h on copies of the inputs (null/undefined entries = optional input absent):
//       linear        [x, w, b?]                  {act: 'none'|'silu'|'gelu'}
//       conv2d        [x, w, b?]                  {stride=1, padding=k/2 | padTop, padLeft, padBottom, padRight}
//       conv_temporal [x, w, b?]                  {frames}
//       conv1d_same   [x, w, b?]
//       group_norm    [x, gamma, beta]            {frames=1, groups, eps=1e-5, silu=false}
//       layer_norm    [x, gamma?, beta?]          {eps=1e-5}
//       attention     [q, k, v]                   {heads, scale=D^-0.5}
//       silu | gelu | geglu | upsample_nearest2x  [x]
//       add | mul | add_                          [a, b]      (add_ returns a after a += b)
//       axpby         [x, y]                      {a, b}
//       scale         [x]                         {s}
//       concat        [x0, x1, ...]               {dim}
//       timestep_embedding [t (f32 1-d)]          {dim, flipSinToCos=true, downscaleFreqShift=0, maxPeriod=10000}
//       gemm          [A, B, biasCol?, biasRow?, C?] {transA=false, transB=false, act, alpha=1, accumulate=false}
//                     A [M, K] ([K, M] when transA), B [K, N] ([N, K] when transB), f32/f16/bf16; out [M, N]
//                     (with accumulate, C [M, N] is the value accumulated onto)
//   benchList(suite) -> string[]                   names of the registered bench cases of a suite
//   benchRun(name)   -> Promise<{name, gflops, gbps, seconds, flops, note, cpuSeconds}>
//
// Bad names, shapes, dtypes and params reject with ERR_INVALID_ARG / ERR_SHAPE_MISMATCH / ERR_DTYPE.
#include <napi.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/status.h"
#include "core/tensor.h"
#include "napi/common.h"
#include "ops/ops.h"

namespace st2v::napi {
namespace {

int int_param(const Napi::Object& p, const char* key, int def, int lo, int hi) {
    const double d = get_number(p, key, def);
    ST2V_CHECK_ARG(std::isfinite(d) && d == std::floor(d) && d >= lo && d <= hi, "option '%s' must be an integer in [%d, %d]",
                   key, lo, hi);
    return static_cast<int>(d);
}
float float_param(const Napi::Object& p, const char* key, double def) {
    const double d = get_number(p, key, def);
    ST2V_CHECK_ARG(std::isfinite(d), "option '%s' must be a finite number", key);
    return static_cast<float>(d);
}
ops::Act act_param(const Napi::Object& p) {
    const std::string a = get_string(p, "act", "none");
    if (a == "none") return ops::Act::kNone;
    if (a == "silu") return ops::Act::kSilu;
    if (a == "gelu") return ops::Act::kGelu;
    ST2V_THROW(Code::kInvalidArgument, "option 'act' must be 'none', 'silu' or 'gelu', got '%s'", a.c_str());
}

// Builds the computation on the JS thread (all argument parsing here), runs it on a worker.
std::function<Tensor()> build_op(const std::string& name, std::vector<Tensor> in, const Napi::Object& p) {
    auto need = [&](size_t lo, size_t hi) {
        ST2V_CHECK_ARG(in.size() >= lo && in.size() <= hi, "runOp('%s'): expected %zu..%zu inputs, got %zu", name.c_str(),
                       lo, hi, in.size());
        for (size_t i = 0; i < lo; ++i)
            ST2V_CHECK_ARG(in[i].defined(), "runOp('%s'): input %zu is required", name.c_str(), i);
        in.resize(hi);  // absent optional inputs are undefined tensors
    };
    if (name == "linear") {
        need(2, 3);
        const ops::Act act = act_param(p);
        return [in, act] { return ops::linear(in[0], in[1], in[2], act); };
    }
    if (name == "conv2d") {
        need(2, 3);
        const int k = in[1].ndim() == 4 ? static_cast<int>(in[1].size(2)) : 1;
        ops::Conv2dParams cp;
        cp.stride = int_param(p, "stride", 1, 1, 1 << 20);
        const int pad = int_param(p, "padding", k / 2, 0, 1 << 20);
        cp.pad_top = int_param(p, "padTop", pad, 0, 1 << 20);
        cp.pad_left = int_param(p, "padLeft", pad, 0, 1 << 20);
        cp.pad_bottom = int_param(p, "padBottom", pad, 0, 1 << 20);
        cp.pad_right = int_param(p, "padRight", pad, 0, 1 << 20);
        return [in, cp] { return ops::conv2d(in[0], in[1], in[2], cp); };
    }
    if (name == "conv_temporal") {
        need(2, 3);
        const int frames = int_param(p, "frames", 1, 1, 1 << 20);
        return [in, frames] { return ops::conv_temporal(in[0], frames, in[1], in[2]); };
    }
    if (name == "conv1d_same") {
        need(2, 3);
        return [in] { return ops::conv1d_same(in[0], in[1], in[2]); };
    }
    if (name == "group_norm") {
        need(3, 3);
        const int frames = int_param(p, "frames", 1, 1, 1 << 20), groups = int_param(p, "groups", 32, 1, 1 << 20);
        const float eps = float_param(p, "eps", 1e-5);
        const bool silu = get_bool(p, "silu", false);
        return [in, frames, groups, eps, silu] { return ops::group_norm(in[0], frames, groups, in[1], in[2], eps, silu); };
    }
    if (name == "layer_norm") {
        need(1, 3);
        const float eps = float_param(p, "eps", 1e-5);
        return [in, eps] { return ops::layer_norm(in[0], in[1], in[2], eps); };
    }
    if (name == "attention") {
        need(3, 3);
        const int heads = int_param(p, "heads", 1, 1, 1 << 20);
        double def_scale = 1.0;
        if (in[0].ndim() == 3 && in[0].size(2) % heads == 0 && in[0].size(2) > 0)
            def_scale = 1.0 / std::sqrt(static_cast<double>(in[0].size(2) / heads));
        const float scale = float_param(p, "scale", def_scale);
        return [in, heads, scale] { return ops::attention(in[0], in[1], in[2], heads, scale); };
    }
    if (name == "silu") { need(1, 1); return [in] { return ops::silu(in[0]); }; }
    if (name == "gelu") { need(1, 1); return [in] { return ops::gelu(in[0]); }; }
    if (name == "geglu") { need(1, 1); return [in] { return ops::geglu(in[0]); }; }
    if (name == "upsample_nearest2x") { need(1, 1); return [in] { return ops::upsample_nearest2x(in[0]); }; }
    if (name == "add") { need(2, 2); return [in] { return ops::add(in[0], in[1]); }; }
    if (name == "mul") { need(2, 2); return [in] { return ops::mul(in[0], in[1]); }; }
    if (name == "add_") {
        need(2, 2);
        return [in] {
            Tensor a = in[0];
            ops::add_(a, in[1]);
            return a;
        };
    }
    if (name == "axpby") {
        need(2, 2);
        const float a = float_param(p, "a", 1.0), b = float_param(p, "b", 1.0);
        return [in, a, b] { return ops::axpby(in[0], a, in[1], b); };
    }
    if (name == "scale") {
        need(1, 1);
        const float s = float_param(p, "s", 1.0);
        return [in, s] { return ops::scale(in[0], s); };
    }
    if (name == "concat") {
        ST2V_CHECK_ARG(!in.empty(), "runOp('concat'): expected at least one input");
        for (size_t i = 0; i < in.size(); ++i) ST2V_CHECK_ARG(in[i].defined(), "runOp('concat'): input %zu is required", i);
        const int dim = int_param(p, "dim", 0, -kMaxDims, kMaxDims - 1);
        return [in, dim] { return ops::concat(in, dim); };
    }
    if (name == "timestep_embedding") {
        need(1, 1);
        check_dtype(in[0], DType::F32, "timestep_embedding", "t");
        ST2V_CHECK(in[0].ndim() == 1, Code::kShapeMismatch, "timestep_embedding: t must be 1-d, got %s", in[0].desc().c_str());
        const int dim = int_param(p, "dim", 0, 1, 1 << 24);
        const bool flip = get_bool(p, "flipSinToCos", true);
        const float shift = float_param(p, "downscaleFreqShift", 0.0), maxp = float_param(p, "maxPeriod", 10000.0);
        Tensor t = in[0];
        return [t, dim, flip, shift, maxp] {
            std::vector<float> tv(t.f32(), t.f32() + t.numel());
            return ops::timestep_embedding(tv, dim, flip, shift, maxp);
        };
    }
    if (name == "gemm") {
        need(2, 5);
        const bool ta = get_bool(p, "transA", false), tb = get_bool(p, "transB", false);
        const bool accumulate = get_bool(p, "accumulate", false);
        const float alpha = float_param(p, "alpha", 1.0);
        const ops::Act act = act_param(p);
        for (int i = 0; i < 2; ++i)
            ST2V_CHECK(in[static_cast<size_t>(i)].ndim() == 2, Code::kShapeMismatch, "gemm: %s must be 2-d, got %s",
                       i ? "B" : "A", in[static_cast<size_t>(i)].desc().c_str());
        const Tensor& A = in[0];
        const Tensor& B = in[1];
        const int64_t M = ta ? A.size(1) : A.size(0), K = ta ? A.size(0) : A.size(1);
        const int64_t KB = tb ? B.size(1) : B.size(0), N = tb ? B.size(0) : B.size(1);
        ST2V_CHECK(K == KB, Code::kShapeMismatch, "gemm: A %s and B %s have different K", A.desc().c_str(), B.desc().c_str());
        for (const Tensor* t : {&A, &B})
            ST2V_CHECK(t->dtype() == DType::F32 || t->dtype() == DType::F16 || t->dtype() == DType::BF16, Code::kDtype,
                       "gemm: operands must be f32, f16 or bf16, got %s", t->desc().c_str());
        if (in[2].defined()) {
            check_dtype(in[2], DType::F32, "gemm", "biasCol");
            ST2V_CHECK(in[2].numel() == N, Code::kShapeMismatch, "gemm: biasCol %s must have N = %lld elements",
                       in[2].desc().c_str(), (long long)N);
        }
        if (in[3].defined()) {
            check_dtype(in[3], DType::F32, "gemm", "biasRow");
            ST2V_CHECK(in[3].numel() == M, Code::kShapeMismatch, "gemm: biasRow %s must have M = %lld elements",
                       in[3].desc().c_str(), (long long)M);
        }
        ST2V_CHECK_ARG(!accumulate || in[4].defined(), "gemm: accumulate needs input C");
        if (in[4].defined()) {
            check_dtype(in[4], DType::F32, "gemm", "C");
            ST2V_CHECK(in[4].shape() == Shape({M, N}), Code::kShapeMismatch, "gemm: C %s must be [%lld, %lld]",
                       in[4].desc().c_str(), (long long)M, (long long)N);
        }
        return [in, ta, tb, accumulate, alpha, act, M, N, K] {
            const Tensor& A = in[0];
            const Tensor& B = in[1];
            Tensor C = in[4].defined() && accumulate ? in[4].clone() : Tensor::zeros({M, N});
            ops::MatRef a{A.raw(), A.dtype(), ta ? 1 : K, ta ? M : 1};
            ops::MatRef b{B.raw(), B.dtype(), tb ? 1 : N, tb ? K : 1};
            ops::GemmEpilogue ep;
            ep.bias_col = in[2].defined() ? in[2].f32() : nullptr;
            ep.bias_row = in[3].defined() ? in[3].f32() : nullptr;
            ep.act = act;
            ep.alpha = alpha;
            ep.accumulate = accumulate;
            ops::gemm(M, N, K, a, b, C.f32(), N, ep);
            return C;
        };
    }
    ST2V_THROW(Code::kInvalidArgument, "runOp: unknown op '%s'", name.c_str());
}

Napi::Value RunOp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::function<Tensor()> fn;
    try {
    guard(env, [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 2 && info[0].IsString(), "runOp(name, inputs, params?): name must be a string");
        ST2V_CHECK_ARG(info[1].IsArray(), "runOp(name, inputs, params?): inputs must be an array of tensors");
        const std::string name = info[0].As<Napi::String>().Utf8Value();
        Napi::Array arr = info[1].As<Napi::Array>();
        ST2V_CHECK_ARG(arr.Length() <= 4096, "runOp: too many inputs");
        std::vector<Tensor> in;
        for (uint32_t i = 0; i < arr.Length(); ++i) {
            Napi::Value v = arr.Get(i);
            if (v.IsUndefined() || v.IsNull()) { in.emplace_back(); continue; }
            const std::string what = "inputs[" + std::to_string(i) + "]";
            in.push_back(tensor_from_js(v, what.c_str()));
        }
        Napi::Object params = Napi::Object::New(env);
        if (info.Length() >= 3 && !info[2].IsUndefined() && !info[2].IsNull()) {
            ST2V_CHECK_ARG(info[2].IsObject(), "runOp(name, inputs, params?): params must be an object");
            params = info[2].As<Napi::Object>();
        }
        fn = build_op(name, std::move(in), params);
        return env.Undefined();
    });
    } catch (const Napi::Error& e) {  // argument errors reject the promise like compute errors do
        Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
        d.Reject(e.Value());
        return d.Promise();
    }
    auto result = std::make_shared<Tensor>();
    return run_async(
        env, "st2v.runOp", [fn, result] { *result = fn(); },
        [result](Napi::Env e) -> Napi::Value { return tensor_to_js(e, *result); });
}

Napi::Value BenchList(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsString(), "benchList(suite): suite must be a string");
        const std::string suite = info[0].As<Napi::String>().Utf8Value();
        Napi::Array a = Napi::Array::New(info.Env());
        uint32_t i = 0;
        for (const bench::Case& c : bench::cases())
            if (c.suite == suite) a.Set(i++, Napi::String::New(info.Env(), c.name));
        return a;
    });
}

Napi::Value BenchRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const bench::Case* found = nullptr;
    try {
    guard(env, [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsString(), "benchRun(name): name must be a string");
        const std::string name = info[0].As<Napi::String>().Utf8Value();
        found = bench::find_case(name);
        ST2V_CHECK(found != nullptr, Code::kNotFound, "benchRun: no bench case named '%s'", name.c_str());
        return env.Undefined();
    });
    } catch (const Napi::Error& e) {
        Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
        d.Reject(e.Value());
        return d.Promise();
    }
    auto res = std::make_shared<bench::Result>();
    bench::BenchFn fn = found->fn;
    return run_async(
        env, "st2v.benchRun", [fn, res] { *res = fn(); },
        [res](Napi::Env e) -> Napi::Value {
            Napi::Object o = Napi::Object::New(e);
            o.Set("name", Napi::String::New(e, res->name));
            o.Set("gflops", Napi::Number::New(e, res->gflops));
            o.Set("gbps", Napi::Number::New(e, res->gbps));
            o.Set("seconds", Napi::Number::New(e, res->seconds));
            o.Set("flops", Napi::Number::New(e, res->flops));
            o.Set("note", Napi::String::New(e, res->note));
            o.Set("cpuSeconds", Napi::Number::New(e, res->cpu_seconds));
            o.Set("bestSeconds", Napi::Number::New(e, res->best_seconds));
            Napi::Object extra = Napi::Object::New(e);
            for (const auto& [k, v] : res->extra) extra.Set(k, Napi::Number::New(e, v));
            o.Set("extra", extra);
            return o;
        });
}

void init(Napi::Env env, Napi::Object exports) {
    exports.Set("runOp", Napi::Function::New(env, RunOp, "runOp"));
    exports.Set("benchList", Napi::Function::New(env, BenchList, "benchList"));
    exports.Set("benchRun", Napi::Function::New(env, BenchRun, "benchRun"));
}
const Registrar reg(init);

}  // namespace
}  // namespace st2v::napi
