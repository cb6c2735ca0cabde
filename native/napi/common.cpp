#include "napi/common.h"

#include <cstring>
#include <new>
#include <vector>

namespace st2v::napi {

namespace {
std::vector<InitFn>& registry() {
    static std::vector<InitFn> r;
    return r;
}

class Worker : public Napi::AsyncWorker {
  public:
    Worker(Napi::Env env, const char* name, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
           std::vector<Napi::Value> keep)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
          done_(std::move(done)) {
        for (auto& v : keep) refs_.push_back(Napi::Persistent(v));
    }
    Napi::Promise promise() { return deferred_.Promise(); }

  protected:
    void Execute() override {
        try {
            work_();
        } catch (const Error& e) {
            code_ = e.code();
            SetError(e.what());
        } catch (const std::bad_alloc&) {
            code_ = Code::kOutOfMemory;
            SetError("host memory allocation failed");
        } catch (const std::exception& e) {
            code_ = Code::kInternal;
            SetError(e.what());
        } catch (...) {
            code_ = Code::kInternal;
            SetError("unknown native exception");
        }
    }
    void OnOK() override {
        Napi::Env env = Env();
        try {
            deferred_.Resolve(done_(env));
        } catch (const Napi::Error& e) {
            deferred_.Reject(e.Value());
        } catch (const Error& e) {
            deferred_.Reject(make_error(env, e.code(), e.what()).Value());
        } catch (const std::exception& e) {
            deferred_.Reject(make_error(env, Code::kInternal, e.what()).Value());
        }
    }
    void OnError(const Napi::Error& err) override {
        deferred_.Reject(make_error(Env(), code_, err.Message()).Value());
    }

  private:
    Napi::Promise::Deferred deferred_;
    std::function<void()> work_;
    std::function<Napi::Value(Napi::Env)> done_;
    std::vector<Napi::Reference<Napi::Value>> refs_;
    Code code_ = Code::kInternal;
};

DType typed_array_dtype(napi_typedarray_type t, bool* ok) {
    *ok = true;
    switch (t) {
        case napi_float32_array: return DType::F32;
        case napi_float64_array: return DType::F64;
        case napi_int32_array: return DType::I32;
        case napi_bigint64_array: return DType::I64;
        case napi_int16_array: return DType::I16;
        case napi_uint16_array: return DType::F16;  // 2-byte raw: the dtype field says f16 or bf16
        case napi_int8_array: return DType::I8;
        case napi_uint8_array: return DType::U8;
        default: *ok = false; return DType::F32;
    }
}
}  // namespace

Registrar::Registrar(InitFn fn) { registry().push_back(fn); }
void run_registered(Napi::Env env, Napi::Object exports) {
    for (InitFn fn : registry()) fn(env, exports);
}

Napi::Error make_error(Napi::Env env, Code code, const std::string& message) {
    Napi::Error e = Napi::Error::New(env, message);
    e.Set("code", Napi::String::New(env, code_name(code)));
    e.Set("name", Napi::String::New(env, "St2vError"));
    return e;
}

Napi::Value guard(Napi::Env env, const std::function<Napi::Value()>& fn) {
    try {
        return fn();
    } catch (const Napi::Error&) {
        throw;
    } catch (const Error& e) {
        throw make_error(env, e.code(), e.what());
    } catch (const std::bad_alloc&) {
        throw make_error(env, Code::kOutOfMemory, "host memory allocation failed");
    } catch (const std::exception& e) {
        throw make_error(env, Code::kInternal, e.what());
    }
}

Napi::Promise run_async(Napi::Env env, const char* name, std::function<void()> work,
                        std::function<Napi::Value(Napi::Env)> done, std::vector<Napi::Value> keep) {
    auto* w = new Worker(env, name, std::move(work), std::move(done), std::move(keep));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
}

Tensor tensor_from_js(const Napi::Value& v, const char* what) {
    ST2V_CHECK_ARG(v.IsObject(), "%s: expected a tensor object {data, shape, dtype}", what);
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value data = o.Get("data");
    Napi::Value shape = o.Get("shape");
    ST2V_CHECK_ARG(data.IsTypedArray(), "%s.data: expected a TypedArray", what);
    ST2V_CHECK_ARG(shape.IsArray(), "%s.shape: expected an array of integers", what);
    Napi::TypedArray ta = data.As<Napi::TypedArray>();
    bool ok;
    DType dt = typed_array_dtype(ta.TypedArrayType(), &ok);
    ST2V_CHECK(ok, Code::kDtype, "%s.data: unsupported TypedArray type", what);
    Napi::Value dtv = o.Get("dtype");
    if (dtv.IsString()) {
        DType named;
        ST2V_CHECK(dtype_from_name(dtv.As<Napi::String>().Utf8Value(), &named), Code::kDtype, "%s.dtype: unknown dtype '%s'",
                   what, dtv.As<Napi::String>().Utf8Value().c_str());
        ST2V_CHECK(dtype_size(named) == dtype_size(dt) && (named == dt || dt == DType::F16 || dt == DType::U8),
                   Code::kDtype, "%s.dtype '%s' does not match its TypedArray", what, dtype_name(named));
        dt = named;
    }
    Napi::Array sa = shape.As<Napi::Array>();
    ST2V_CHECK_ARG(sa.Length() <= static_cast<uint32_t>(kMaxDims), "%s.shape: rank %u exceeds %d", what, sa.Length(),
                   kMaxDims);
    std::vector<int64_t> dims;
    for (uint32_t i = 0; i < sa.Length(); ++i) {
        Napi::Value d = sa.Get(i);
        ST2V_CHECK_ARG(d.IsNumber(), "%s.shape[%u]: expected an integer", what, i);
        double x = d.As<Napi::Number>().DoubleValue();
        ST2V_CHECK_ARG(x >= 0 && x == static_cast<double>(static_cast<int64_t>(x)) && x < 9.0e15,
                       "%s.shape[%u]: expected a non-negative integer, got %g", what, i, x);
        dims.push_back(static_cast<int64_t>(x));
    }
    Shape s(dims);
    size_t want = static_cast<size_t>(s.numel()) * dtype_size(dt);
    ST2V_CHECK(ta.ByteLength() == want, Code::kShapeMismatch, "%s: shape %s (%s) needs %zu bytes, data has %zu", what,
               s.str().c_str(), dtype_name(dt), want, static_cast<size_t>(ta.ByteLength()));
    const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    return Tensor::from_data(src, s, dt);
}

Napi::Object tensor_to_js(Napi::Env env, const Tensor& t0) {
    Tensor t = t0.contiguous();
    size_t bytes = t.nbytes();
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes);
    if (bytes) std::memcpy(ab.Data(), t.raw(), bytes);
    size_t n = static_cast<size_t>(t.numel());
    Napi::Value data;
    switch (t.dtype()) {
        case DType::F32: data = Napi::Float32Array::New(env, n, ab, 0); break;
        case DType::F64: data = Napi::Float64Array::New(env, n, ab, 0); break;
        case DType::F16: case DType::BF16: data = Napi::Uint16Array::New(env, n, ab, 0); break;
        case DType::I64: data = Napi::BigInt64Array::New(env, n, ab, 0); break;
        case DType::I32: data = Napi::Int32Array::New(env, n, ab, 0); break;
        case DType::I16: data = Napi::Int16Array::New(env, n, ab, 0); break;
        case DType::I8: data = Napi::Int8Array::New(env, n, ab, 0); break;
        case DType::U8: case DType::Bool: data = Napi::Uint8Array::New(env, n, ab, 0); break;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("data", data);
    Napi::Array shape = Napi::Array::New(env, static_cast<size_t>(t.ndim()));
    for (int i = 0; i < t.ndim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
    o.Set("shape", shape);
    o.Set("dtype", Napi::String::New(env, dtype_name(t.dtype())));
    return o;
}

double get_number(const Napi::Object& o, const char* key, double def) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return def;
    ST2V_CHECK_ARG(v.IsNumber(), "option '%s' must be a number", key);
    return v.As<Napi::Number>().DoubleValue();
}
bool get_bool(const Napi::Object& o, const char* key, bool def) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return def;
    ST2V_CHECK_ARG(v.IsBoolean(), "option '%s' must be a boolean", key);
    return v.As<Napi::Boolean>().Value();
}
std::string get_string(const Napi::Object& o, const char* key, const std::string& def) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return def;
    ST2V_CHECK_ARG(v.IsString(), "option '%s' must be a string", key);
    return v.As<Napi::String>().Utf8Value();
}

}  // namespace st2v::napi
