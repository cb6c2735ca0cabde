// Weights I/O for TypeScript (`st2v convert`): the name map and safetensors headers (typed in
// lib/native/binding.ts via lib/convert/native.ts).
//
//   native.nameMapInfo()                       -> {namings: string[], components: string[]}
//   native.detectNaming(keys: string[])        -> string ("" when unknown)
//   native.mapNames(naming, [[key, shape], ...]) -> {naming, mapped: [{source, target, component, shape, op,
//                                                  rowBegin, rowEnd}], dropped: string[], unmapped: string[]}
//   await native.readSafetensorsHeader(path)   -> {dataStart, fileSize, metadata, entries: [{name, dtype, shape,
//                                                  begin, end}]}   (validated: ERR_FORMAT / ERR_IO / ERR_NOT_FOUND)
//   await native.castBuffer(src: Uint8Array, from, to) -> Uint8Array   (f32/f16/bf16/f64, round to nearest even)
#include <napi.h>

#include "io/dtype_cast.h"
#include "io/name_map.h"
#include "io/safetensors.h"
#include "napi/common.h"

namespace st2v::napi {
namespace {

Napi::Array strings(Napi::Env env, const std::vector<std::string>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
    return a;
}

Napi::Array shape_js(Napi::Env env, const Shape& s) {
    Napi::Array a = Napi::Array::New(env, static_cast<size_t>(s.ndim()));
    for (int i = 0; i < s.ndim(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(s[i])));
    return a;
}

Shape shape_from_js(const Napi::Value& v, const std::string& key) {
    ST2V_CHECK_ARG(v.IsArray(), "mapNames: shape of '%s' must be an array of integers", key.c_str());
    Napi::Array a = v.As<Napi::Array>();
    ST2V_CHECK_ARG(a.Length() <= static_cast<uint32_t>(kMaxDims), "mapNames: shape of '%s' has more than %d dims",
                   key.c_str(), kMaxDims);
    std::vector<int64_t> d;
    for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value x = a.Get(i);
        ST2V_CHECK_ARG(x.IsNumber(), "mapNames: shape of '%s' must be an array of integers", key.c_str());
        double f = x.As<Napi::Number>().DoubleValue();
        ST2V_CHECK_ARG(f >= 0 && f <= 9007199254740991.0 && f == static_cast<double>(static_cast<int64_t>(f)),
                       "mapNames: shape of '%s' must hold non-negative integers", key.c_str());
        d.push_back(static_cast<int64_t>(f));
    }
    return Shape(d);
}

Napi::Value NameMapInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("namings", strings(env, io::namings()));
    o.Set("components", strings(env, io::components()));
    return o;
}

Napi::Value DetectNaming(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        ST2V_CHECK_ARG(info.Length() >= 1 && info[0].IsArray(), "detectNaming(keys): keys must be an array of strings");
        Napi::Array a = info[0].As<Napi::Array>();
        std::vector<std::string> keys;
        for (uint32_t i = 0; i < a.Length(); ++i) {
            Napi::Value k = a.Get(i);
            ST2V_CHECK_ARG(k.IsString(), "detectNaming(keys): keys must be an array of strings");
            keys.push_back(k.As<Napi::String>().Utf8Value());
        }
        return Napi::String::New(info.Env(), io::detect_naming(keys));
    });
}

Napi::Value MapNames(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        Napi::Env env = info.Env();
        ST2V_CHECK_ARG(info.Length() >= 2 && info[0].IsString() && info[1].IsArray(),
                       "mapNames(naming, keys): naming must be a string, keys an array of [name, shape]");
        std::string naming = info[0].As<Napi::String>().Utf8Value();
        Napi::Array a = info[1].As<Napi::Array>();
        std::vector<std::pair<std::string, Shape>> keys;
        keys.reserve(a.Length());
        for (uint32_t i = 0; i < a.Length(); ++i) {
            Napi::Value e = a.Get(i);
            ST2V_CHECK_ARG(e.IsArray() && e.As<Napi::Array>().Length() == 2 && e.As<Napi::Array>().Get(0u).IsString(),
                           "mapNames: keys[%u] must be [name, shape]", i);
            std::string k = e.As<Napi::Array>().Get(0u).As<Napi::String>().Utf8Value();
            keys.emplace_back(k, shape_from_js(e.As<Napi::Array>().Get(1u), k));
        }
        io::NameMapResult r = io::map_names(naming, keys);
        Napi::Object o = Napi::Object::New(env);
        o.Set("naming", r.naming);
        Napi::Array m = Napi::Array::New(env, r.mapped.size());
        for (size_t i = 0; i < r.mapped.size(); ++i) {
            const io::MappedTensor& t = r.mapped[i];
            Napi::Object x = Napi::Object::New(env);
            x.Set("source", t.source);
            x.Set("target", t.target);
            x.Set("component", t.component);
            x.Set("shape", shape_js(env, t.shape));
            x.Set("op", t.op);
            x.Set("rowBegin", Napi::Number::New(env, static_cast<double>(t.row_begin)));
            x.Set("rowEnd", Napi::Number::New(env, static_cast<double>(t.row_end)));
            m.Set(static_cast<uint32_t>(i), x);
        }
        o.Set("mapped", m);
        o.Set("dropped", strings(env, r.dropped));
        o.Set("unmapped", strings(env, r.unmapped));
        return o;
    });
}

Napi::Value ReadSafetensorsHeader(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
        auto d = Napi::Promise::Deferred::New(env);
        d.Reject(make_error(env, Code::kInvalidArgument, "readSafetensorsHeader(path): path must be a string").Value());
        return d.Promise();
    }
    std::string path = info[0].As<Napi::String>().Utf8Value();
    auto h = std::make_shared<io::SafetensorsHeader>();
    return run_async(
        env, "st2v:safetensors-header", [path, h] { *h = io::read_safetensors_header(path); },
        [h](Napi::Env env) -> Napi::Value {
            Napi::Object o = Napi::Object::New(env);
            o.Set("dataStart", Napi::Number::New(env, static_cast<double>(h->data_start)));
            o.Set("fileSize", Napi::Number::New(env, static_cast<double>(h->file_size)));
            Napi::Object md = Napi::Object::New(env);
            for (const auto& kv : h->metadata) md.Set(kv.first, kv.second);
            o.Set("metadata", md);
            Napi::Array es = Napi::Array::New(env, h->entries.size());
            for (size_t i = 0; i < h->entries.size(); ++i) {
                const io::SafetensorsEntry& e = h->entries[i];
                Napi::Object x = Napi::Object::New(env);
                x.Set("name", e.name);
                x.Set("dtype", dtype_name(e.dtype));
                x.Set("shape", shape_js(env, e.shape));
                x.Set("begin", Napi::Number::New(env, static_cast<double>(e.begin)));
                x.Set("end", Napi::Number::New(env, static_cast<double>(e.end)));
                es.Set(static_cast<uint32_t>(i), x);
            }
            o.Set("entries", es);
            return o;
        });
}

Napi::Value CastBuffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    DType from = DType::F32, to = DType::F32;
    size_t n = 0;
    try {
        ST2V_CHECK_ARG(info.Length() >= 3 && info[0].IsTypedArray() && info[1].IsString() && info[2].IsString(),
                       "castBuffer(src, from, to): src must be a Uint8Array, from/to dtype names");
        ST2V_CHECK_ARG(dtype_from_name(info[1].As<Napi::String>().Utf8Value(), &from) &&
                           dtype_from_name(info[2].As<Napi::String>().Utf8Value(), &to),
                       "castBuffer: unknown dtype");
        ST2V_CHECK(io::is_float_dtype(from) && io::is_float_dtype(to), Code::kDtype,
                   "castBuffer: %s -> %s is not a floating-point conversion", dtype_name(from), dtype_name(to));
        Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
        ST2V_CHECK_ARG(ta.ByteLength() % dtype_size(from) == 0, "castBuffer: %zu bytes is not a whole number of %s",
                       ta.ByteLength(), dtype_name(from));
        n = ta.ByteLength() / dtype_size(from);
    } catch (const Error& e) {
        auto d = Napi::Promise::Deferred::New(env);
        d.Reject(make_error(env, e.code(), e.what()).Value());
        return d.Promise();
    }
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    const unsigned char* src = static_cast<const unsigned char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, n * dtype_size(to));
    unsigned char* dst = static_cast<unsigned char*>(out.Data());
    auto ref = std::make_shared<Napi::Reference<Napi::ArrayBuffer>>(Napi::Persistent(out));
    return run_async(
        env, "st2v:cast", [src, dst, from, to, n] { io::cast_elements(src, from, dst, to, n); },
        [ref](Napi::Env env) -> Napi::Value {
            Napi::ArrayBuffer ab = ref->Value();
            return Napi::Uint8Array::New(env, ab.ByteLength(), ab, 0);
        },
        {info[0]});
}

void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("nameMapInfo", Napi::Function::New(env, NameMapInfo, "nameMapInfo"));
    exports.Set("detectNaming", Napi::Function::New(env, DetectNaming, "detectNaming"));
    exports.Set("mapNames", Napi::Function::New(env, MapNames, "mapNames"));
    exports.Set("castBuffer", Napi::Function::New(env, CastBuffer, "castBuffer"));
    exports.Set("readSafetensorsHeader", Napi::Function::New(env, ReadSafetensorsHeader, "readSafetensorsHeader"));
}

Registrar reg(Init);

}  // namespace
}  // namespace st2v::napi
