// `st2v verify` cases of the enhancer (issue 9) on a golden/enhancer-format dump: the single forward with every
// per-block output (fwd/), the batch-2 forward (fwd_b2/) and the full official 30-step sample (sample/, tolerance
// 1e-3 as the issue sets it). Every size comes from the dump; groups add nothing when their files are absent.
#include "models/common/verify_registry.h"
#include "models/enhancer/verify.h"
#include "models/enhancer/vid2vid_unet.h"

namespace st2v::enhancer {
namespace {

using verify::CaseResult;
using verify::Dump;

std::vector<float> timesteps(const Tensor& t) {
    std::vector<float> v;
    Tensor tt = t.contiguous();
    if (tt.dtype() == DType::I64)
        for (int64_t i = 0; i < tt.numel(); ++i) v.push_back(static_cast<float>(tt.data<int64_t>()[i]));
    else {
        Tensor f = tt.to(DType::F32);
        for (int64_t i = 0; i < f.numel(); ++i) v.push_back(f.f32()[i]);
    }
    return v;
}

bool is_enhancer_dump(Dump& d, std::string* prefix) {
    if (!d.has_weights()) return false;
    const io::WeightStore& w = d.weights();
    if (w.has("input_blocks.0.0.weight")) *prefix = "";
    else if (w.has("enhancer.input_blocks.0.0.weight")) *prefix = "enhancer.";
    else return false;
    return true;
}

void forward_cases(Dump& d, std::vector<CaseResult>& out) {
    std::string p;
    if (!is_enhancer_dump(d, &p)) return;
    if (!d.has("fwd/x.npy") && !d.has("fwd_b2/x.npy")) return;
    Vid2VidUNet net(d.weights(), p);
    for (const char* c : {"fwd", "fwd_b2"}) {
        const std::string dir = c;
        if (!d.has(dir + "/x.npy") || !d.has(dir + "/out.npy")) continue;
        std::vector<std::pair<std::string, Tensor>> taps;
        Tensor o = net.forward(d.npy(dir + "/x.npy").to(DType::F32), timesteps(d.npy(dir + "/t.npy")),
                               d.npy(dir + "/y.npy").to(DType::F32),
                               [&](const std::string& n, const Tensor& h) { taps.emplace_back(n, h); });
        for (const auto& [n, h] : taps)
            if (d.has(dir + "/inter_" + n + ".npy"))
                out.push_back(verify::compare("enhancer_" + dir + "_" + n, h, d.npy(dir + "/inter_" + n + ".npy")));
        out.push_back(verify::compare("enhancer_" + dir + "_out", o, d.npy(dir + "/out.npy")));
    }
}

void sample_cases(Dump& d, std::vector<CaseResult>& out) {
    std::string p;
    if (!is_enhancer_dump(d, &p) || p != "" || !d.has("sample/x_t.npy") || !d.has("sample/result.npy")) return;
    for (const VerifyResult& r : verify_sample(d.dir())) {
        CaseResult c;
        c.name = "enhancer_" + r.name.substr(r.name.find('/') + 1);
        for (char& ch : c.name)
            if (ch == '/') ch = '_';
        if (c.name.find(' ') != std::string::npos) c.name = c.name.substr(0, c.name.find(' '));
        c.max_abs = r.max_abs;
        c.max_rel = r.max_err;
        c.tol = r.tol;
        c.pass = r.pass;
        if (!r.pass) c.note = "max |d|/max(1,|ref|) above " + std::to_string(r.tol);
        out.push_back(c);
    }
}

const verify::Registrar reg_fwd("enhancer_fwd", forward_cases, 300);
const verify::Registrar reg_sample("enhancer_sample", sample_cases, 310);

}  // namespace
}  // namespace st2v::enhancer
