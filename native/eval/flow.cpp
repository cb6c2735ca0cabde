// Coarse-to-fine variational optical flow — see flow.h.
#include "eval/flow.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/status.h"

namespace st2v::eval {

void rgb_to_gray_f32(const uint8_t* rgb, int64_t npix, float* out) {
    for (int64_t i = 0; i < npix; ++i)
        out[i] = 0.299f * rgb[3 * i] + 0.587f * rgb[3 * i + 1] + 0.114f * rgb[3 * i + 2];
}

namespace {

struct Image {
    int w = 0, h = 0;
    std::vector<float> p;
    Image() = default;
    Image(int w_, int h_) : w(w_), h(h_), p((size_t)w_ * h_) {}
    float at(int x, int y) const { return p[(size_t)y * w + x]; }
};

// 5-tap binomial blur, then 2x decimation (sizes round up).
Image pyr_down(const Image& s) {
    static const float k[5] = {1 / 16.f, 4 / 16.f, 6 / 16.f, 4 / 16.f, 1 / 16.f};
    Image tmp(s.w, s.h);
    for (int y = 0; y < s.h; ++y)
        for (int x = 0; x < s.w; ++x) {
            float a = 0;
            for (int j = -2; j <= 2; ++j) a += k[j + 2] * s.at(std::clamp(x + j, 0, s.w - 1), y);
            tmp.p[(size_t)y * s.w + x] = a;
        }
    Image d((s.w + 1) / 2, (s.h + 1) / 2);
    for (int y = 0; y < d.h; ++y)
        for (int x = 0; x < d.w; ++x) {
            float a = 0;
            for (int j = -2; j <= 2; ++j) a += k[j + 2] * tmp.at(2 * x, std::clamp(2 * y + j, 0, s.h - 1));
            d.p[(size_t)y * d.w + x] = a;
        }
    return d;
}

float sample_bilinear(const Image& im, float x, float y) {
    x = std::clamp(x, 0.f, (float)(im.w - 1));
    y = std::clamp(y, 0.f, (float)(im.h - 1));
    const int x0 = (int)x, y0 = (int)y;  // x, y >= 0: truncation = floor
    const int x1 = std::min(x0 + 1, im.w - 1), y1 = std::min(y0 + 1, im.h - 1);
    const float fx = x - (float)x0, fy = y - (float)y0;  // exact 0 on integer positions: no drift
    const float a = im.at(x0, y0) + fx * (im.at(x1, y0) - im.at(x0, y0));
    const float b = im.at(x0, y1) + fx * (im.at(x1, y1) - im.at(x0, y1));
    return a + fy * (b - a);
}

// Upsamples a coarse flow field to (w, h), scaling the vectors by the size ratio.
void upsample_flow(const Image& cu, const Image& cv, Image& u, Image& v) {
    const float sx = (float)u.w / cu.w, sy = (float)u.h / cu.h;
    for (int y = 0; y < u.h; ++y)
        for (int x = 0; x < u.w; ++x) {
            const float X = (x + 0.5f) / sx - 0.5f, Y = (y + 0.5f) / sy - 0.5f;
            u.p[(size_t)y * u.w + x] = sample_bilinear(cu, X, Y) * sx;
            v.p[(size_t)y * u.w + x] = sample_bilinear(cv, X, Y) * sy;
        }
}

void refine_level(const Image& I0, const Image& I1, Image& u, Image& v, float alpha, float omega, int warps,
                  int iters) {
    const int w = I0.w, h = I0.h;
    const size_t n = (size_t)w * h;
    std::vector<float> Ix(n), Iy(n), It(n), u0(n), v0(n);
    Image warped(w, h);
    const float a2 = alpha * alpha;
    for (int k = 0; k < warps; ++k) {
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const size_t i = (size_t)y * w + x;
                warped.p[i] = sample_bilinear(I1, x + u.p[i], y + v.p[i]);
            }
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const size_t i = (size_t)y * w + x;
                const int xm = std::max(x - 1, 0), xp = std::min(x + 1, w - 1);
                const int ym = std::max(y - 1, 0), yp = std::min(y + 1, h - 1);
                const float dx = xp > xm ? 1.f / (xp - xm) : 0.f, dy = yp > ym ? 1.f / (yp - ym) : 0.f;
                // Average of both frames' gradients (warped frame 1 at the current estimate).
                Ix[i] = 0.5f * dx * ((warped.at(xp, y) - warped.at(xm, y)) + (I0.at(xp, y) - I0.at(xm, y)));
                Iy[i] = 0.5f * dy * ((warped.at(x, yp) - warped.at(x, ym)) + (I0.at(x, yp) - I0.at(x, ym)));
                It[i] = warped.p[i] - I0.p[i];
                u0[i] = u.p[i];
                v0[i] = v.p[i];
            }
        // Gauss-Seidel on the linearised Horn-Schunck equations for the full field U = u0 + du.
        for (int it = 0; it < iters; ++it) {
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x) {
                    const size_t i = (size_t)y * w + x;
                    float su = 0, sv = 0;
                    int cnt = 0;
                    if (x > 0) { su += u.p[i - 1]; sv += v.p[i - 1]; ++cnt; }
                    if (x + 1 < w) { su += u.p[i + 1]; sv += v.p[i + 1]; ++cnt; }
                    if (y > 0) { su += u.p[i - w]; sv += v.p[i - w]; ++cnt; }
                    if (y + 1 < h) { su += u.p[i + w]; sv += v.p[i + w]; ++cnt; }
                    const float ub = cnt ? su / cnt : u.p[i], vb = cnt ? sv / cnt : v.p[i];
                    const float gx = Ix[i], gy = Iy[i];
                    const float r = gx * (ub - u0[i]) + gy * (vb - v0[i]) + It[i];
                    const float q = r / (a2 + gx * gx + gy * gy);
                    // Successive over-relaxation of the Gauss-Seidel update.
                    u.p[i] += omega * (ub - gx * q - u.p[i]);
                    v.p[i] += omega * (vb - gy * q - v.p[i]);
                }
        }
    }
}

}  // namespace

void dense_flow(const float* gray0, const float* gray1, int w, int h, float* flow, const FlowOptions& opt) {
    ST2V_CHECK_ARG(w > 0 && h > 0, "flow: bad size %dx%d", w, h);
    ST2V_CHECK_ARG(opt.alpha > 0 && opt.warps >= 1 && opt.iterations >= 1, "flow: bad options");
    std::vector<Image> p0, p1;
    p0.emplace_back(w, h);
    p1.emplace_back(w, h);
    std::memcpy(p0[0].p.data(), gray0, sizeof(float) * w * h);
    std::memcpy(p1[0].p.data(), gray1, sizeof(float) * w * h);
    while ((int)p0.size() < opt.max_levels && std::min(p0.back().w, p0.back().h) >= 2 * opt.min_size) {
        p0.push_back(pyr_down(p0.back()));
        p1.push_back(pyr_down(p1.back()));
    }
    const int L = (int)p0.size();
    Image u(p0[L - 1].w, p0[L - 1].h), v(p0[L - 1].w, p0[L - 1].h);
    for (int l = L - 1; l >= 0; --l) {
        if (l != L - 1) {
            Image nu(p0[l].w, p0[l].h), nv(p0[l].w, p0[l].h);
            upsample_flow(u, v, nu, nv);
            u = std::move(nu);
            v = std::move(nv);
        }
        // Coarser levels are cheap: give them more sweeps so smoothness can propagate across flat areas.
        const int iters = opt.iterations * (l == 0 ? 1 : 2 + l);
        refine_level(p0[l], p1[l], u, v, opt.alpha, opt.omega, opt.warps, iters);
    }
    std::memcpy(flow, u.p.data(), sizeof(float) * w * h);
    std::memcpy(flow + (size_t)w * h, v.p.data(), sizeof(float) * w * h);
}

}  // namespace st2v::eval
