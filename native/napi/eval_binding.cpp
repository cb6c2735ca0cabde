// Evaluation metrics (native/eval) for lib/eval: SCuts, dense optical flow, OFS / warp error / MAWE.
//
//   evalProcessingSize(width, height, version, downscale) -> {width, height, factor, resized}
//   evalScenecutDeltas(frames: Uint8Array, n, width, height, {version, downscale})
//       -> Promise<{hue, sat, lum, content: Float64Array(n-1)}>   (entry i: frames i -> i+1)
//   evalScenecutDetect(content: Float64Array (per frame, [0] = 0), version) -> {cuts: number[], adaptiveRatio}
//   evalFlow(frame0, frame1: Uint8Array rgb24, width, height, {alpha, omega, warps, iterations})
//       -> Promise<Float32Array(2*h*w)>; with {raft: weightsPath, raftUpdates} the RAFT model instead
//   evalWarpMetrics(frame0, frame1, flow: Float32Array, width, height) -> {motion, motionSq, warpErr, hits}
//   evalMawePairs(frames, n, width, height, {size, alpha, omega, warps, iterations, raft, raftUpdates})
//       -> Promise<{motion, motionSq, warpErr, hits: Float64Array(n-1)}>   (frames resized to size x size)
//   evalMaweSummary(motion, motionSq, warpErr: Float64Array, variant: 'code'|'paper', c) -> {mawe, ofs, warpError}
//
// Small inputs are copied. The frame batches of evalScenecutDeltas / evalMawePairs are NOT copied (they are
// large): the binding keeps the JS array alive and reads it in place, so the caller must not modify or
// transfer it until the promise settles (lib/eval passes fresh arrays). Pairs of one batch are spread over
// the engine's thread pool (contiguous runs per thread, deterministic).
#include <napi.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "core/status.h"
#include "core/threadpool.h"
#include "eval/flow.h"
#include "eval/mawe.h"
#include "eval/raft.h"
#include "eval/scenecut.h"
#include "napi/common.h"

namespace st2v::napi {
namespace {

// A view of a Uint8Array's bytes, valid while the array is kept alive.
struct ByteView {
    const uint8_t* data;
    size_t size;
};
ByteView view_of(const Napi::Value& v, const char* what) {
    ST2V_CHECK_ARG(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array,
                   "%s: expected a Uint8Array", what);
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    return {a.Data(), a.ByteLength()};
}

std::vector<uint8_t> bytes_of(const Napi::Value& v, const char* what) {
    ST2V_CHECK_ARG(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array,
                   "%s: expected a Uint8Array", what);
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    return std::vector<uint8_t>(a.Data(), a.Data() + a.ByteLength());
}

template <typename T, typename A>
std::vector<T> typed_of(const Napi::Value& v, napi_typedarray_type type, const char* what) {
    ST2V_CHECK_ARG(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type, "%s: wrong TypedArray type",
                   what);
    A a = v.As<A>();
    return std::vector<T>(a.Data(), a.Data() + a.ElementLength());
}

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* what, int lo) {
    ST2V_CHECK_ARG(info.Length() > i && info[i].IsNumber(), "%s: expected an integer", what);
    const double d = info[i].As<Napi::Number>().DoubleValue();
    ST2V_CHECK_ARG(d == (double)(int64_t)d && d >= lo && d < 1e9, "%s: expected an integer >= %d", what, lo);
    return (int)d;
}

Napi::Object opts_arg(const Napi::CallbackInfo& info, size_t i) {
    if (info.Length() > i && info[i].IsObject()) return info[i].As<Napi::Object>();
    return Napi::Object::New(info.Env());
}

eval::FlowOptions flow_opts(const Napi::Object& o) {
    eval::FlowOptions f;
    f.alpha = (float)get_number(o, "alpha", f.alpha);
    f.omega = (float)get_number(o, "omega", f.omega);
    f.warps = (int)get_number(o, "warps", f.warps);
    f.iterations = (int)get_number(o, "iterations", f.iterations);
    ST2V_CHECK_ARG(f.alpha > 0, "flow option 'alpha' must be > 0");
    ST2V_CHECK_ARG(f.omega > 0 && f.omega < 2, "flow option 'omega' must be in (0, 2)");
    ST2V_CHECK_ARG(f.warps >= 1 && f.warps <= 50, "flow option 'warps' must be in 1..50");
    ST2V_CHECK_ARG(f.iterations >= 1 && f.iterations <= 10000, "flow option 'iterations' must be in 1..10000");
    return f;
}

// RAFT models by weights path, loaded once (on a worker thread) and shared.
std::shared_ptr<eval::RaftModel> raft_model(const std::string& path) {
    static std::mutex mu;
    static std::map<std::string, std::shared_ptr<eval::RaftModel>> cache;
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(path);
    if (it != cache.end()) return it->second;
    auto m = eval::RaftModel::load(path);
    cache[path] = m;
    return m;
}

struct FlowChoice {
    eval::FlowOptions classical;
    std::string raft;  // weights path; empty = classical estimator
    int updates = 12;
};

FlowChoice flow_choice(const Napi::Object& o) {
    FlowChoice c;
    c.classical = flow_opts(o);
    c.raft = get_string(o, "raft", "");
    const double u = get_number(o, "raftUpdates", 12);
    ST2V_CHECK_ARG(u >= 1 && u <= 100 && u == (double)(int)u, "option 'raftUpdates' must be an integer in 1..100");
    c.updates = (int)u;
    return c;
}

Napi::Float64Array f64_array(Napi::Env env, const std::vector<double>& v) {
    Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
    if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(double));
    return a;
}

Napi::Object size_obj(Napi::Env env, const eval::ProcessingSize& ps) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("width", ps.width);
    o.Set("height", ps.height);
    o.Set("factor", ps.factor);
    o.Set("resized", ps.resized);
    return o;
}

Napi::Value ProcessingSize(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        const int w = int_arg(info, 0, "width", 1), h = int_arg(info, 1, "height", 1);
        ST2V_CHECK_ARG(info.Length() > 3 && info[2].IsString() && info[3].IsBoolean(),
                       "evalProcessingSize(width, height, version: string, downscale: boolean)");
        const auto v = eval::parse_scenecut_version(info[2].As<Napi::String>().Utf8Value());
        return size_obj(info.Env(), eval::scenecut_processing_size(w, h, v, info[3].As<Napi::Boolean>().Value()));
    });
}

void check_frames(size_t bytes, int n, int w, int h, const char* what) {
    ST2V_CHECK_ARG(bytes == (size_t)n * w * h * 3, "%s: %d frames of %dx%d rgb24 need %zu bytes, got %zu", what, n, w,
                   h, (size_t)n * w * h * 3, bytes);
}

Napi::Value ScenecutDeltas(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        const ByteView frames = view_of(info[0], "frames");
        const int n = int_arg(info, 1, "n", 0), w = int_arg(info, 2, "width", 1), h = int_arg(info, 3, "height", 1);
        check_frames(frames.size, n, w, h, "frames");
        Napi::Object o = opts_arg(info, 4);
        const auto v = eval::parse_scenecut_version(get_string(o, "version", "0.6.2"));
        const auto ps = eval::scenecut_processing_size(w, h, v, get_bool(o, "downscale", true));
        auto out = std::make_shared<std::vector<eval::FrameDelta>>();
        return run_async(
            info.Env(), "st2v.evalScenecutDeltas",
            [=]() { *out = eval::scenecut_frame_deltas(frames.data, n, w, h, ps); },
            [=](Napi::Env env) -> Napi::Value {
                std::vector<double> hu, sa, lu, co;
                for (const auto& d : *out) {
                    hu.push_back(d.hue);
                    sa.push_back(d.sat);
                    lu.push_back(d.lum);
                    co.push_back(d.content);
                }
                Napi::Object r = Napi::Object::New(env);
                r.Set("hue", f64_array(env, hu));
                r.Set("sat", f64_array(env, sa));
                r.Set("lum", f64_array(env, lu));
                r.Set("content", f64_array(env, co));
                r.Set("size", size_obj(env, ps));
                return r;
            },
            {info[0]});
    });
}

Napi::Value ScenecutDetect(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        auto content = typed_of<double, Napi::Float64Array>(info[0], napi_float64_array, "content");
        ST2V_CHECK_ARG(info.Length() > 1 && info[1].IsString(), "version: expected a string");
        const auto v = eval::parse_scenecut_version(info[1].As<Napi::String>().Utf8Value());
        const auto r = eval::scenecut_detect(content, v);
        Napi::Env env = info.Env();
        Napi::Object o = Napi::Object::New(env);
        Napi::Array cuts = Napi::Array::New(env, r.cuts.size());
        for (size_t i = 0; i < r.cuts.size(); ++i) cuts.Set((uint32_t)i, r.cuts[i]);
        o.Set("cuts", cuts);
        o.Set("adaptiveRatio", f64_array(env, r.adaptive_ratio));
        return o;
    });
}

Napi::Value Flow(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        auto f0 = std::make_shared<std::vector<uint8_t>>(bytes_of(info[0], "frame0"));
        auto f1 = std::make_shared<std::vector<uint8_t>>(bytes_of(info[1], "frame1"));
        const int w = int_arg(info, 2, "width", 1), h = int_arg(info, 3, "height", 1);
        check_frames(f0->size(), 1, w, h, "frame0");
        check_frames(f1->size(), 1, w, h, "frame1");
        const FlowChoice fc = flow_choice(opts_arg(info, 4));
        auto flow = std::make_shared<std::vector<float>>((size_t)2 * w * h);
        return run_async(
            info.Env(), "st2v.evalFlow",
            [=]() {
                if (!fc.raft.empty()) {
                    raft_model(fc.raft)->flow(f0->data(), f1->data(), w, h, flow->data(), fc.updates);
                    return;
                }
                const auto& fo = fc.classical;
                std::vector<float> g0((size_t)w * h), g1((size_t)w * h);
                eval::rgb_to_gray_f32(f0->data(), (int64_t)w * h, g0.data());
                eval::rgb_to_gray_f32(f1->data(), (int64_t)w * h, g1.data());
                eval::dense_flow(g0.data(), g1.data(), w, h, flow->data(), fo);
            },
            [=](Napi::Env env) -> Napi::Value {
                Napi::Float32Array a = Napi::Float32Array::New(env, flow->size());
                std::memcpy(a.Data(), flow->data(), flow->size() * sizeof(float));
                return a;
            });
    });
}

Napi::Object pair_obj(Napi::Env env, const eval::PairMetrics& m) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("motion", m.motion);
    o.Set("motionSq", m.motion_sq);
    o.Set("warpErr", m.warp_err);
    o.Set("hits", (double)m.hits);
    return o;
}

Napi::Value WarpMetrics(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        const auto f0 = bytes_of(info[0], "frame0");
        const auto f1 = bytes_of(info[1], "frame1");
        const auto flow = typed_of<float, Napi::Float32Array>(info[2], napi_float32_array, "flow");
        const int w = int_arg(info, 3, "width", 1), h = int_arg(info, 4, "height", 1);
        check_frames(f0.size(), 1, w, h, "frame0");
        check_frames(f1.size(), 1, w, h, "frame1");
        ST2V_CHECK_ARG(flow.size() == (size_t)2 * w * h, "flow: expected 2*%d*%d floats, got %zu", h, w, flow.size());
        return pair_obj(info.Env(), eval::warp_pair_metrics(f0.data(), f1.data(), flow.data(), w, h));
    });
}

Napi::Value MawePairs(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        const ByteView frames = view_of(info[0], "frames");
        const int n = int_arg(info, 1, "n", 0), w = int_arg(info, 2, "width", 1), h = int_arg(info, 3, "height", 1);
        check_frames(frames.size, n, w, h, "frames");
        Napi::Object o = opts_arg(info, 4);
        const double sd = get_number(o, "size", 720);
        ST2V_CHECK_ARG(sd >= 0 && sd <= 8192 && sd == (double)(int)sd, "option 'size' must be an integer in 0..8192");
        const int size = (int)sd;  // 0 = keep the input size
        const int W = size > 0 ? size : w, H = size > 0 ? size : h;
        const FlowChoice fc = flow_choice(o);
        auto out = std::make_shared<std::vector<eval::PairMetrics>>(n > 1 ? n - 1 : 0);
        return run_async(
            info.Env(), "st2v.evalMawePairs",
            [=]() {
                std::shared_ptr<eval::RaftModel> raft = fc.raft.empty() ? nullptr : raft_model(fc.raft);
                const size_t fb = (size_t)W * H * 3, in_fb = (size_t)w * h * 3;
                std::vector<uint8_t> rs((size_t)n * fb);
                std::vector<float> gray((size_t)n * W * H);
                parallel_for(n, [&](int64_t b, int64_t e, int) {
                    for (int64_t f = b; f < e; ++f) {
                        if (W == w && H == h) std::memcpy(rs.data() + f * fb, frames.data + f * in_fb, fb);
                        else eval::resize_bilinear_torch_u8c3(frames.data + f * in_fb, w, h, rs.data() + f * fb, W, H);
                        eval::rgb_to_gray_f32(rs.data() + f * fb, (int64_t)W * H, gray.data() + (size_t)f * W * H);
                    }
                });
                parallel_for(n - 1, [&](int64_t b, int64_t e, int) {
                    std::vector<float> flow((size_t)2 * W * H);
                    for (int64_t t = b; t < e; ++t) {
                        if (raft)
                            raft->flow(rs.data() + t * fb, rs.data() + (t + 1) * fb, W, H, flow.data(), fc.updates);
                        else
                            eval::dense_flow(gray.data() + (size_t)t * W * H, gray.data() + (size_t)(t + 1) * W * H, W,
                                             H, flow.data(), fc.classical);
                        (*out)[t] = eval::warp_pair_metrics(rs.data() + t * fb, rs.data() + (t + 1) * fb, flow.data(), W, H);
                    }
                });
            },
            [=](Napi::Env env) -> Napi::Value {
                std::vector<double> mo, m2, we, hi;
                for (const auto& m : *out) {
                    mo.push_back(m.motion);
                    m2.push_back(m.motion_sq);
                    we.push_back(m.warp_err);
                    hi.push_back((double)m.hits);
                }
                Napi::Object r = Napi::Object::New(env);
                r.Set("motion", f64_array(env, mo));
                r.Set("motionSq", f64_array(env, m2));
                r.Set("warpErr", f64_array(env, we));
                r.Set("hits", f64_array(env, hi));
                return r;
            },
            {info[0]});
    });
}

Napi::Value MaweSummary(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
        const auto mo = typed_of<double, Napi::Float64Array>(info[0], napi_float64_array, "motion");
        const auto m2 = typed_of<double, Napi::Float64Array>(info[1], napi_float64_array, "motionSq");
        const auto we = typed_of<double, Napi::Float64Array>(info[2], napi_float64_array, "warpErr");
        ST2V_CHECK_ARG(mo.size() == m2.size() && mo.size() == we.size(), "motion/motionSq/warpErr lengths differ");
        ST2V_CHECK_ARG(info.Length() > 4 && info[3].IsString() && info[4].IsNumber(),
                       "evalMaweSummary(motion, motionSq, warpErr, variant, c)");
        const std::string vs = info[3].As<Napi::String>().Utf8Value();
        ST2V_CHECK_ARG(vs == "code" || vs == "paper", "variant must be 'code' or 'paper'");
        std::vector<eval::PairMetrics> p(mo.size());
        for (size_t i = 0; i < p.size(); ++i) {
            p[i].motion = mo[i];
            p[i].motion_sq = m2[i];
            p[i].warp_err = we[i];
        }
        const auto s = eval::mawe_summary(p, vs == "code" ? eval::MaweVariant::kCode : eval::MaweVariant::kPaper,
                                          info[4].As<Napi::Number>().DoubleValue());
        Napi::Object o = Napi::Object::New(info.Env());
        o.Set("mawe", s.mawe);
        o.Set("ofs", s.ofs);
        o.Set("warpError", s.warp_error);
        return o;
    });
}

void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("evalProcessingSize", Napi::Function::New(env, ProcessingSize, "evalProcessingSize"));
    exports.Set("evalScenecutDeltas", Napi::Function::New(env, ScenecutDeltas, "evalScenecutDeltas"));
    exports.Set("evalScenecutDetect", Napi::Function::New(env, ScenecutDetect, "evalScenecutDetect"));
    exports.Set("evalFlow", Napi::Function::New(env, Flow, "evalFlow"));
    exports.Set("evalWarpMetrics", Napi::Function::New(env, WarpMetrics, "evalWarpMetrics"));
    exports.Set("evalMawePairs", Napi::Function::New(env, MawePairs, "evalMawePairs"));
    exports.Set("evalMaweSummary", Napi::Function::New(env, MaweSummary, "evalMaweSummary"));
}

Registrar reg(Init);

}  // namespace
}  // namespace st2v::napi
