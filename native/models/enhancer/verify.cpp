#include "models/enhancer/verify.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/status.h"
#include "io/npy.h"
#include "io/weights.h"
#include "models/enhancer/vid2vid_unet.h"
#include "runtime/enhancer_sampling.h"

namespace st2v::enhancer {

namespace {

Tensor npy(const std::string& dir, const std::string& rel) {
    const std::string p = dir + "/" + rel;
    ST2V_CHECK(std::filesystem::exists(p), Code::kNotFound, "verify enhancer: missing golden file '%s'", p.c_str());
    return io::read_npy(p);
}

// Accumulates max |a − ref| and max |a − ref| / max(1, |ref|).
void compare(const Tensor& a, const Tensor& ref, VerifyResult* r) {
    ST2V_CHECK(a.numel() == ref.numel(), Code::kShapeMismatch, "verify enhancer: %s: %s vs reference %s", r->name.c_str(),
               a.desc().c_str(), ref.desc().c_str());
    Tensor x = a.contiguous(), y = ref.to(DType::F32);
    const float* xp = x.f32();
    const float* yp = y.f32();
    for (int64_t i = 0; i < x.numel(); ++i) {
        const double d = std::fabs(double(xp[i]) - double(yp[i]));
        if (!(d == d)) {  // NaN counts as a failure
            r->max_abs = r->max_err = INFINITY;
            continue;
        }
        r->max_abs = std::max(r->max_abs, d);
        r->max_err = std::max(r->max_err, d / std::max(1.0, std::fabs(double(yp[i]))));
    }
}

VerifyResult finish(VerifyResult r) {
    r.pass = r.max_err <= r.tol;
    return r;
}

std::vector<float> timesteps(const Tensor& t) {
    std::vector<float> v;
    Tensor tt = t.contiguous();
    for (int64_t i = 0; i < tt.numel(); ++i)
        v.push_back(tt.dtype() == DType::I64 ? static_cast<float>(tt.data<int64_t>()[i]) : tt.to(DType::F32).f32()[i]);
    return v;
}

}  // namespace

std::vector<VerifyResult> verify_forward(const std::string& dir) {
    io::WeightStore w = io::load_safetensors(dir + "/weights.safetensors");
    Vid2VidUNet net(w);
    std::map<std::string, Tensor> taps;
    Tensor out = net.forward(npy(dir, "fwd/x.npy"), timesteps(npy(dir, "fwd/t.npy")), npy(dir, "fwd/y.npy"),
                             [&](const std::string& n, const Tensor& h) { taps[n] = h; });
    std::vector<VerifyResult> res;
    for (const auto& [name, h] : taps) {
        const std::string file = "fwd/inter_" + name + ".npy";
        if (!std::filesystem::exists(dir + "/" + file)) continue;
        VerifyResult r;
        r.name = "enhancer/fwd/" + name;
        r.tol = 1e-4;
        compare(h, npy(dir, file), &r);
        res.push_back(finish(r));
    }
    VerifyResult r;
    r.name = "enhancer/fwd/out";
    r.tol = 1e-4;
    compare(out, npy(dir, "fwd/out.npy"), &r);
    res.push_back(finish(r));
    return res;
}

VerifyResult verify_forward_b2(const std::string& dir) {
    io::WeightStore w = io::load_safetensors(dir + "/weights.safetensors");
    Vid2VidUNet net(w);
    Tensor out = net.forward(npy(dir, "fwd_b2/x.npy"), timesteps(npy(dir, "fwd_b2/t.npy")), npy(dir, "fwd_b2/y.npy"));
    VerifyResult r;
    r.name = "enhancer/fwd_b2/out";
    r.tol = 1e-4;
    compare(out, npy(dir, "fwd_b2/out.npy"), &r);
    return finish(r);
}

std::vector<VerifyResult> verify_sample(const std::string& dir) {
    io::WeightStore w = io::load_safetensors(dir + "/weights.safetensors");
    Vid2VidUNet net(w);
    const std::string d = "sample/";
    Tensor xt = npy(dir, d + "x_t.npy"), noise = npy(dir, d + "brownian_noise.npy");
    Tensor y_pos = npy(dir, d + "y_pos.npy"), y_neg = npy(dir, d + "y_neg.npy");
    Tensor model_in = npy(dir, d + "step_model_in.npy"), x0b = npy(dir, d + "step_x0_blend.npy");
    Tensor vc = npy(dir, d + "step_v_cond.npy"), vu = npy(dir, d + "step_v_uncond.npy");
    Tensor offs = npy(dir, d + "split_offsets.npy").contiguous();
    runtime::EnhancerSchedule sch;
    const std::vector<float> sigmas = sch.solver_sigmas(30, 599, 0);
    runtime::PyRandom rng(8888);  // the golden's random.seed(8888)
    VerifyResult r_in{"enhancer/sample/step_model_in", 0, 0, 1e-3, false};
    VerifyResult r_v{"enhancer/sample/step_v (cond+uncond, every chunk)", 0, 0, 1e-3, false};
    VerifyResult r_x0{"enhancer/sample/step_x0_blend", 0, 0, 1e-3, false};
    VerifyResult r_off{"enhancer/sample/split_offsets", 0, 0, 0, false};
    int cur_step = 0;
    int64_t chunk_calls = 0;
    const int64_t n_chunks = vc.size(1);
    Tensor out = runtime::sde_dpmpp_2m_sample(
        xt, sigmas,
        [&](const Tensor& x_in, float s, int i) {
            cur_step = i;
            compare(x_in, model_in.select(0, i), &r_in);
            chunk_calls = 0;
            std::vector<int64_t> offsets;
            Tensor D = runtime::enhancer_model_fn(
                x_in, s, sch,
                [&](const Tensor& xc, int64_t t, bool cond) {
                    const int64_t k = (chunk_calls / 2) % n_chunks;
                    ++chunk_calls;
                    Tensor v = net.forward(xc.contiguous(), {static_cast<float>(t)}, cond ? y_pos : y_neg);
                    compare(v, (cond ? vc : vu).select(0, cur_step).select(0, k), &r_v);
                    return v;
                },
                rng, runtime::EnhancerGuidance{}, &offsets);
            for (size_t j = 0; j < offsets.size(); ++j) {
                const int64_t want = offs.data<int64_t>()[i * offs.size(1) + static_cast<int64_t>(j)];
                r_off.max_abs = r_off.max_err = std::max(r_off.max_err, std::fabs(double(offsets[j] - want)));
            }
            compare(D, x0b.select(0, i), &r_x0);
            return D;
        },
        [&](int i, const Shape&) { return noise.select(0, i).contiguous(); });
    VerifyResult r_out{"enhancer/sample/result", 0, 0, 1e-3, false};
    compare(out, npy(dir, d + "result.npy"), &r_out);
    return {finish(r_in), finish(r_v), finish(r_x0), finish(r_off), finish(r_out)};
}

std::vector<VerifyResult> verify_all(const std::string& dir, bool with_sample) {
    std::vector<VerifyResult> r = verify_forward(dir);
    r.push_back(verify_forward_b2(dir));
    if (with_sample) {
        std::vector<VerifyResult> s = verify_sample(dir);
        r.insert(r.end(), s.begin(), s.end());
    }
    return r;
}

}  // namespace st2v::enhancer
