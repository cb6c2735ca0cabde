// MAWE / OFS / warp error — see mawe.h.
#include "eval/mawe.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/status.h"

namespace st2v::eval {

namespace {
struct Tap {
    int i0, i1;
    float l0, l1;
};
std::vector<Tap> torch_linear_taps(int in, int out) {
    // As torch's CPU upsample_bilinear2d (checked bit-exact against torch 1.13 on AVX2): the scale is a float
    // (in / out), the source index is computed in double, the weights are rounded to float; an axis whose
    // size does not change is copied.
    std::vector<Tap> t(out);
    const float scale = (float)in / (float)out;
    for (int d = 0; d < out; ++d) {
        if (in == out) {
            t[d] = {d, d, 1.f, 0.f};
            continue;
        }
        double src = (double)scale * (d + 0.5) - 0.5;
        if (src < 0) src = 0;
        const int i0 = (int)src;
        const int p = i0 < in - 1 ? 1 : 0;
        const double l1 = src - (double)i0;
        t[d] = {i0, i0 + p, (float)(1.0 - l1), (float)l1};
    }
    return t;
}
}  // namespace

void resize_bilinear_torch_u8c3(const uint8_t* src, int sw, int sh, uint8_t* dst, int dw, int dh) {
    ST2V_CHECK_ARG(sw > 0 && sh > 0 && dw > 0 && dh > 0, "resize: bad sizes %dx%d -> %dx%d", sw, sh, dw, dh);
    const std::vector<Tap> xs = torch_linear_taps(sw, dw), ys = torch_linear_taps(sh, dh);
    for (int y = 0; y < dh; ++y) {
        const Tap& ty = ys[y];
        const uint8_t* r0 = src + (size_t)ty.i0 * sw * 3;
        const uint8_t* r1 = src + (size_t)ty.i1 * sw * 3;
        uint8_t* o = dst + (size_t)y * dw * 3;
        for (int x = 0; x < dw; ++x) {
            const Tap& tx = xs[x];
            for (int c = 0; c < 3; ++c) {
                // torch's kernel evaluates x0 * w0 + x1 * w1 as fma(x0, w0, x1 * w1) (rows, then columns).
                const float a = std::fma((float)r0[3 * tx.i0 + c], tx.l0, (float)r0[3 * tx.i1 + c] * tx.l1);
                const float b = std::fma((float)r1[3 * tx.i0 + c], tx.l0, (float)r1[3 * tx.i1 + c] * tx.l1);
                const float v = std::fma(a, ty.l0, b * ty.l1);
                o[3 * x + c] = (uint8_t)std::clamp(std::nearbyint(v), 0.f, 255.f);
            }
        }
    }
}

PairMetrics warp_pair_metrics(const uint8_t* f0, const uint8_t* f1, const float* flow, int w, int h) {
    ST2V_CHECK_ARG(w > 0 && h > 0, "warp: bad size %dx%d", w, h);
    const size_t n = (size_t)w * h;
    const float* fx = flow;
    const float* fy = flow + n;
    PairMetrics m;
    double s = 0, s2 = 0;
    // source index that lands on each target (-1 = occluded); later sources overwrite earlier ones.
    std::vector<int32_t> src_of(n, -1);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const size_t i = (size_t)y * w + x;
            const float dx = fx[i], dy = fy[i];
            const double sq = (double)dx * dx + (double)dy * dy;
            s += std::sqrt(sq);
            s2 += sq;
            const float tx = std::nearbyint((float)x + dx);  // float32 add, round half to even
            const float ty = std::nearbyint((float)y + dy);
            if (!(tx >= 0.f && tx <= (float)(w - 1) && ty >= 0.f && ty <= (float)(h - 1))) continue;
            src_of[(size_t)ty * w + (size_t)tx] = (int32_t)i;
        }
    m.motion = s / (double)n;
    m.motion_sq = s2 / (double)n;
    double err = 0;
    int64_t hits = 0;
    for (size_t t = 0; t < n; ++t) {
        const int32_t sidx = src_of[t];
        if (sidx < 0) continue;
        ++hits;
        for (int c = 0; c < 3; ++c) {
            const double d = (double)f1[3 * t + c] - (double)f0[3 * (size_t)sidx + c];
            err += d * d;
        }
    }
    m.hits = hits;
    m.warp_err = hits > 0 ? err / (3.0 * (double)hits) : 0.0;
    return m;
}

MaweSummary mawe_summary(const std::vector<PairMetrics>& pairs, MaweVariant v, double c) {
    MaweSummary r;
    if (pairs.empty()) {
        r.mawe = r.ofs = r.warp_error = std::numeric_limits<double>::quiet_NaN();
        return r;
    }
    double sw = 0, sm = 0, sm2 = 0, ratio = 0;
    for (const PairMetrics& p : pairs) {
        sw += p.warp_err;
        sm += p.motion;
        sm2 += p.motion_sq;
        // Official code: warp_err / (c * motion); zero motion -> inf (0/0 as well: the Python float
        // division of a tensor gives inf or nan; we report +inf for any zero-motion pair).
        ratio += p.motion > 0 ? p.warp_err / (c * p.motion) : std::numeric_limits<double>::infinity();
    }
    const double np = (double)pairs.size();
    r.warp_error = sw / np;
    if (v == MaweVariant::kCode) {
        r.ofs = sm / np;
        r.mawe = ratio / np;
    } else {
        r.ofs = sm2 / np;
        r.mawe = r.ofs > 0 ? r.warp_error / r.ofs : std::numeric_limits<double>::infinity();
    }
    return r;
}

}  // namespace st2v::eval
