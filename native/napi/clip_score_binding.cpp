// CLIP score (native/models/clip/clip_score.h) for lib/eval:
//
//   clipModelInfo(model: string) -> Promise<{imageSize, embedDim, contextLength}>
//   clipEncodeText(model, ids: Int32Array(rows * L), rows) -> Promise<Float32Array(rows * embed)>   (open_clip
//       encode_text, not normalised; L <= contextLength)
//   clipEncodeFrames(model, frames: Uint8Array rgb24 (n * h * w * 3), n, width, height)
//       -> Promise<Float32Array(n * embed)>   (open_clip inference transform + encode_image, not normalised)
//   clipCosine(text: Float32Array(embed), images: Float32Array(n * embed)) -> Float64Array(n)   (100 x cos, raw)
//
// `model` is a model folder from `st2v convert` of open_clip weights (image_encoder + text_encoder +
// text_last_block) or an open_clip safetensors file; it is loaded on a worker thread the first time and kept
// (mmap'd weights) for later calls with the same path. The frames array is read in place: the caller must not
// modify it until the promise settles (lib/eval passes fresh arrays).
#include <napi.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "core/status.h"
#include "models/clip/clip_score.h"
#include "napi/common.h"

namespace st2v::napi {
namespace {

std::shared_ptr<enc::OpenClipScoreModel> clip_model(const std::string& path) {
    static std::mutex mu;
    static std::map<std::string, std::shared_ptr<enc::OpenClipScoreModel>> cache;
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(path);
    if (it != cache.end()) return it->second;
    auto m = enc::OpenClipScoreModel::load(path);
    cache[path] = m;
    return m;
}

std::string path_arg(const Napi::CallbackInfo& info, size_t i) {
    ST2V_CHECK_ARG(info.Length() > i && info[i].IsString(), "model: expected a path string");
    std::string p = info[i].As<Napi::String>().Utf8Value();
    ST2V_CHECK_ARG(!p.empty(), "model: empty path");
    return p;
}

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* what, int lo) {
    ST2V_CHECK_ARG(info.Length() > i && info[i].IsNumber(), "%s: expected an integer", what);
    const double d = info[i].As<Napi::Number>().DoubleValue();
    ST2V_CHECK_ARG(d == (double)(int64_t)d && d >= lo && d < 1e9, "%s: expected an integer >= %d", what, lo);
    return (int)d;
}

Napi::Float32Array f32_array(Napi::Env env, const Tensor& t) {
    Tensor c = t.contiguous().to(DType::F32);
    Napi::Float32Array a = Napi::Float32Array::New(env, (size_t)c.numel());
    if (c.numel() > 0) std::memcpy(a.Data(), c.f32(), (size_t)c.numel() * sizeof(float));
    return a;
}

Napi::Value ModelInfo(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        const std::string path = path_arg(info, 0);
        auto out = std::make_shared<std::shared_ptr<enc::OpenClipScoreModel>>();
        return run_async(
            info.Env(), "st2v.clipModelInfo", [=]() { *out = clip_model(path); },
            [=](Napi::Env env) -> Napi::Value {
                Napi::Object o = Napi::Object::New(env);
                o.Set("imageSize", (double)(*out)->image_size());
                o.Set("embedDim", (double)(*out)->embed_dim());
                o.Set("contextLength", (double)(*out)->context_length());
                return o;
            });
    });
}

Napi::Value EncodeText(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        const std::string path = path_arg(info, 0);
        ST2V_CHECK_ARG(info.Length() > 1 && info[1].IsTypedArray() &&
                           info[1].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array,
                       "ids: expected an Int32Array");
        Napi::Int32Array a = info[1].As<Napi::Int32Array>();
        const int rows = int_arg(info, 2, "rows", 1);
        ST2V_CHECK_ARG(a.ElementLength() % (size_t)rows == 0 && a.ElementLength() > 0,
                       "ids: %zu ids are not %d whole rows", a.ElementLength(), rows);
        const int64_t L = (int64_t)(a.ElementLength() / (size_t)rows);
        Tensor ids = Tensor::from_data(a.Data(), Shape({rows, L}), DType::I32);  // copied
        auto out = std::make_shared<Tensor>();
        return run_async(
            info.Env(), "st2v.clipEncodeText",
            [=]() {
                auto m = clip_model(path);
                ST2V_CHECK(L <= m->context_length(), Code::kInvalidArgument, "ids: %lld tokens per row, at most %lld",
                           (long long)L, (long long)m->context_length());
                *out = m->encode_text(ids);
            },
            [=](Napi::Env env) -> Napi::Value { return f32_array(env, *out); });
    });
}

Napi::Value EncodeFrames(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        const std::string path = path_arg(info, 0);
        ST2V_CHECK_ARG(info.Length() > 1 && info[1].IsTypedArray() &&
                           info[1].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array,
                       "frames: expected a Uint8Array");
        Napi::Uint8Array fr = info[1].As<Napi::Uint8Array>();
        const int n = int_arg(info, 2, "n", 1), w = int_arg(info, 3, "width", 1), h = int_arg(info, 4, "height", 1);
        ST2V_CHECK_ARG(fr.ByteLength() == (size_t)n * w * h * 3, "frames: %d frames of %dx%d rgb24 need %zu bytes, got %zu",
                       n, w, h, (size_t)n * w * h * 3, fr.ByteLength());
        const uint8_t* data = fr.Data();
        auto out = std::make_shared<Tensor>();
        return run_async(
            info.Env(), "st2v.clipEncodeFrames", [=]() { *out = clip_model(path)->encode_frames_rgb24(data, n, w, h); },
            [=](Napi::Env env) -> Napi::Value { return f32_array(env, *out); }, {info[1]});
    });
}

Napi::Value Cosine(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        auto f32 = [&](size_t i, const char* what) {
            ST2V_CHECK_ARG(info.Length() > i && info[i].IsTypedArray() &&
                               info[i].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array,
                           "%s: expected a Float32Array", what);
            return info[i].As<Napi::Float32Array>();
        };
        Napi::Float32Array t = f32(0, "text"), im = f32(1, "images");
        const size_t E = t.ElementLength();
        ST2V_CHECK_ARG(E > 0 && im.ElementLength() % E == 0, "images: %zu floats are not whole rows of %zu",
                       im.ElementLength(), E);
        const int64_t n = (int64_t)(im.ElementLength() / E);
        const auto s = enc::clip_scores(Tensor::from_data(t.Data(), Shape({(int64_t)E}), DType::F32),
                                        Tensor::from_data(im.Data(), Shape({n, (int64_t)E}), DType::F32));
        Napi::Float64Array a = Napi::Float64Array::New(info.Env(), s.size());
        if (!s.empty()) std::memcpy(a.Data(), s.data(), s.size() * sizeof(double));
        return a;
    });
}

void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("clipModelInfo", Napi::Function::New(env, ModelInfo, "clipModelInfo"));
    exports.Set("clipEncodeText", Napi::Function::New(env, EncodeText, "clipEncodeText"));
    exports.Set("clipEncodeFrames", Napi::Function::New(env, EncodeFrames, "clipEncodeFrames"));
    exports.Set("clipCosine", Napi::Function::New(env, Cosine, "clipCosine"));
}

Registrar reg(Init);

}  // namespace
}  // namespace st2v::napi
