// SCuts (PySceneDetect AdaptiveDetector) — see scenecut.h and docs/metrics.md §5.
#include "eval/scenecut.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "core/cpu.h"
#include "core/status.h"
#include "core/threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define ST2V_EVAL_X86 1
#endif

namespace st2v::eval {

ScenecutVersion parse_scenecut_version(const std::string& s) {
    if (s == "0.6.2") return ScenecutVersion::k062;
    if (s == "0.6.3" || s == "0.6.4") return ScenecutVersion::k063;
    if (s == "current" || s == "head" || s == "0.7" || s == "0.7.1") return ScenecutVersion::kCurrent;
    ST2V_THROW(Code::kInvalidArgument, "scenecut version must be 0.6.2, 0.6.3 or current (got '%s')", s.c_str());
}

const char* scenecut_version_name(ScenecutVersion v) {
    switch (v) {
        case ScenecutVersion::k062: return "0.6.2";
        case ScenecutVersion::k063: return "0.6.3";
        default: return "current";
    }
}

ProcessingSize scenecut_processing_size(int width, int height, ScenecutVersion v, bool downscale) {
    ST2V_CHECK_ARG(width > 0 && height > 0, "frame size must be positive (got %dx%d)", width, height);
    ProcessingSize ps;
    ps.width = width;
    ps.height = height;
    if (!downscale || width < 256) return ps;
    if (v == ScenecutVersion::kCurrent) {
        // >= 0.6.5: factor = width / 256.0, size = (max(1, round(w / f)), max(1, round(h / f))).
        const double f = width / 256.0;
        ps.factor = f;
        ps.width = std::max(1, (int)std::nearbyint(width / f));
        ps.height = std::max(1, (int)std::nearbyint(height / f));
    } else {
        // <= 0.6.4: integer factor; resize only when > 1. Python round() is half-to-even, like nearbyint.
        const int f = width / 256;
        ps.factor = f;
        if (f <= 1) return ps;
        ps.width = (int)std::nearbyint((double)width / f);
        ps.height = (int)std::nearbyint((double)height / f);
    }
    ps.resized = ps.width != width || ps.height != height;
    return ps;
}

// ---------------------------------------------------------------------------------------------------
// OpenCV 4.6 INTER_LINEAR, uint8, 3 channels.
namespace {

constexpr int kCoefBits = 11, kCoefScale = 1 << kCoefBits;  // INTER_RESIZE_COEF_BITS

struct AxisTab {
    std::vector<int> ofs;     // source index per output
    std::vector<int16_t> a0, a1;
    int xmax = 0;             // outputs >= xmax use one tap (weight 2048)
};

AxisTab axis_table(int src, int dst, bool clamp_like_x) {
    AxisTab t;
    t.ofs.resize(dst);
    t.a0.resize(dst);
    t.a1.resize(dst);
    t.xmax = dst;
    const double inv_scale = (double)dst / src;
    const double scale = 1. / inv_scale;
    for (int d = 0; d < dst; ++d) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)std::floor(f);
        f -= (float)s;
        if (clamp_like_x) {
            if (s < 0) { f = 0; s = 0; }
            if (s + 1 >= src) {
                t.xmax = std::min(t.xmax, d);
                if (s >= src - 1) { f = 0; s = src - 1; }
            }
        }
        t.ofs[d] = s;
        const float c0 = 1.f - f, c1 = f;
        t.a0[d] = (int16_t)std::lrint(c0 * (float)kCoefScale);
        t.a1[d] = (int16_t)std::lrint(c1 * (float)kCoefScale);
    }
    return t;
}

void hresize_row(const uint8_t* S, int sw, const AxisTab& x, int dw, int32_t* D) {
    (void)sw;
    for (int d = 0; d < dw; ++d) {
        const int s = x.ofs[d] * 3;
        if (d < x.xmax) {
            const int a0 = x.a0[d], a1 = x.a1[d];
            D[d * 3 + 0] = S[s + 0] * a0 + S[s + 3] * a1;
            D[d * 3 + 1] = S[s + 1] * a0 + S[s + 4] * a1;
            D[d * 3 + 2] = S[s + 2] * a0 + S[s + 5] * a1;
        } else {
            D[d * 3 + 0] = S[s + 0] * kCoefScale;
            D[d * 3 + 1] = S[s + 1] * kCoefScale;
            D[d * 3 + 2] = S[s + 2] * kCoefScale;
        }
    }
}

}  // namespace

void resize_linear_u8c3(const uint8_t* src, int sw, int sh, uint8_t* dst, int dw, int dh) {
    ST2V_CHECK_ARG(sw > 0 && sh > 0 && dw > 0 && dh > 0, "resize: bad sizes %dx%d -> %dx%d", sw, sh, dw, dh);
    if (sw == dw && sh == dh) {
        std::memcpy(dst, src, (size_t)sw * sh * 3);
        return;
    }
    if (sw == 2 * dw && sh == 2 * dh) {
        // OpenCV switches INTER_LINEAR to INTER_AREA for an exact 2x downscale: (a+b+c+d+2) >> 2.
        for (int y = 0; y < dh; ++y) {
            const uint8_t* r0 = src + (size_t)(2 * y) * sw * 3;
            const uint8_t* r1 = r0 + (size_t)sw * 3;
            uint8_t* o = dst + (size_t)y * dw * 3;
            for (int x = 0; x < dw; ++x)
                for (int c = 0; c < 3; ++c) {
                    const int i = 6 * x + c;
                    o[3 * x + c] = (uint8_t)((r0[i] + r0[i + 3] + r1[i] + r1[i + 3] + 2) >> 2);
                }
        }
        return;
    }
    const AxisTab xt = axis_table(sw, dw, true);
    const AxisTab yt = axis_table(sh, dh, false);
    std::vector<int32_t> h0((size_t)dw * 3), h1((size_t)dw * 3);
    int row0 = -1, row1 = -1;  // source rows currently in h0 / h1
    for (int y = 0; y < dh; ++y) {
        const int s0 = std::clamp(yt.ofs[y], 0, sh - 1);
        const int s1 = std::clamp(yt.ofs[y] + 1, 0, sh - 1);
        if (s0 != row0) {
            if (s0 == row1) { std::swap(h0, h1); std::swap(row0, row1); }
            else { hresize_row(src + (size_t)s0 * sw * 3, sw, xt, dw, h0.data()); row0 = s0; }
        }
        if (s1 != row1) {
            if (s1 == row0) { h1 = h0; }
            else hresize_row(src + (size_t)s1 * sw * 3, sw, xt, dw, h1.data());
            row1 = s1;
        }
        const int b0 = yt.a0[y], b1 = yt.a1[y];
        uint8_t* o = dst + (size_t)y * dw * 3;
        for (int i = 0; i < dw * 3; ++i) {
            // OpenCV's SIMD VResizeLinearVec_32s8u: 16-bit mulhi on (H >> 4), then (+2) >> 2.
            const int v = ((((h0[i] >> 4) * b0) >> 16) + (((h1[i] >> 4) * b1) >> 16) + 2) >> 2;
            o[i] = (uint8_t)std::clamp(v, 0, 255);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// OpenCV 8-bit BGR2HSV (hsv_shift = 12, tables rounded with cvRound).
namespace {
struct HsvTables {
    int sdiv[256], hdiv[256];
    HsvTables() {
        sdiv[0] = hdiv[0] = 0;
        for (int i = 1; i < 256; ++i) {
            sdiv[i] = (int)std::nearbyint((255 << 12) / (1. * i));
            hdiv[i] = (int)std::nearbyint((180 << 12) / (6. * i));
        }
    }
};
const HsvTables& hsv_tables() {
    static const HsvTables t;
    return t;
}
}  // namespace

namespace {
void hsv_scalar(const uint8_t* rgb, int64_t npix, uint8_t* H, uint8_t* S, uint8_t* V) {
    const HsvTables& T = hsv_tables();
    for (int64_t i = 0; i < npix; ++i) {
        const int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        const int v = std::max(std::max(b, g), r);
        const int vmin = std::min(std::min(b, g), r);
        const int diff = v - vmin;
        const int s = (diff * T.sdiv[v] + (1 << 11)) >> 12;
        int h;
        if (v == r) h = g - b;
        else if (v == g) h = b - r + 2 * diff;
        else h = r - g + 4 * diff;
        h = (h * T.hdiv[diff] + (1 << 11)) >> 12;
        if (h < 0) h += 180;
        H[i] = (uint8_t)h;
        S[i] = (uint8_t)s;
        V[i] = (uint8_t)v;
    }
}


#ifdef ST2V_EVAL_X86
// Low byte of each of 8 int32 lanes -> 8 bytes.
__attribute__((target("avx2"))) inline void store8_avx2(uint8_t* dst, __m256i x, __m256i pick) {
    const __m256i b = _mm256_shuffle_epi8(x, pick);
    const uint32_t lo = (uint32_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(b));
    const uint32_t hi = (uint32_t)_mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1));
    std::memcpy(dst, &lo, 4);
    std::memcpy(dst + 4, &hi, 4);
}

// 8 pixels per step: one gather reads r,g,b(,next r) of each pixel; the division tables are gathered too.
__attribute__((target("avx2"))) void hsv_avx2(const uint8_t* rgb, int64_t npix, uint8_t* H, uint8_t* S,
                                               uint8_t* V) {
    const HsvTables& T = hsv_tables();
    const __m256i idx = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
    const __m256i ff = _mm256_set1_epi32(0xff), round = _mm256_set1_epi32(1 << 11);
    const __m256i c180 = _mm256_set1_epi32(180), zero = _mm256_setzero_si256();
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    int64_t i = 0;
    // The gather of the last pixel reads one byte past it: stop while a whole next pixel remains.
    for (; i + 9 <= npix; i += 8) {
        const __m256i px = _mm256_i32gather_epi32(reinterpret_cast<const int*>(rgb + 3 * i), idx, 1);
        const __m256i r = _mm256_and_si256(px, ff);
        const __m256i g = _mm256_and_si256(_mm256_srli_epi32(px, 8), ff);
        const __m256i b = _mm256_and_si256(_mm256_srli_epi32(px, 16), ff);
        const __m256i v = _mm256_max_epi32(_mm256_max_epi32(b, g), r);
        const __m256i vmin = _mm256_min_epi32(_mm256_min_epi32(b, g), r);
        const __m256i diff = _mm256_sub_epi32(v, vmin);
        const __m256i sd = _mm256_i32gather_epi32(T.sdiv, v, 4);
        const __m256i s = _mm256_srli_epi32(_mm256_add_epi32(_mm256_mullo_epi32(diff, sd), round), 12);
        const __m256i vr = _mm256_cmpeq_epi32(v, r), vg = _mm256_cmpeq_epi32(v, g);
        const __m256i d2 = _mm256_add_epi32(diff, diff);
        const __m256i hr = _mm256_sub_epi32(g, b);
        const __m256i hg = _mm256_add_epi32(_mm256_sub_epi32(b, r), d2);
        const __m256i hb = _mm256_add_epi32(_mm256_sub_epi32(r, g), _mm256_add_epi32(d2, d2));
        __m256i h = _mm256_blendv_epi8(_mm256_blendv_epi8(hb, hg, vg), hr, vr);
        const __m256i hd = _mm256_i32gather_epi32(T.hdiv, diff, 4);
        h = _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(h, hd), round), 12);
        h = _mm256_add_epi32(h, _mm256_and_si256(_mm256_cmpgt_epi32(zero, h), c180));
        store8_avx2(H + i, h, pick);
        store8_avx2(S + i, s, pick);
        store8_avx2(V + i, v, pick);
    }
    if (i < npix) hsv_scalar(rgb + 3 * i, npix - i, H + i, S + i, V + i);
}

__attribute__((target("avx2"))) int64_t sad_avx2(const uint8_t* a, const uint8_t* b, int64_t n) {
    __m256i acc = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i));
        const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i));
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(x, y));
    }
    alignas(32) int64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
    int64_t total = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; ++i) total += std::abs((int)a[i] - (int)b[i]);
    return total;
}
#endif
}  // namespace

void rgb_to_hsv_u8(const uint8_t* rgb, int64_t npix, uint8_t* H, uint8_t* S, uint8_t* V) {
#ifdef ST2V_EVAL_X86
    if (active_isa() >= Isa::kAvx2) return hsv_avx2(rgb, npix, H, S, V);
#endif
    hsv_scalar(rgb, npix, H, S, V);
}

namespace {
int64_t sad_u8(const uint8_t* a, const uint8_t* b, int64_t n) {
#ifdef ST2V_EVAL_X86
    if (active_isa() >= Isa::kAvx2) return sad_avx2(a, b, n);
#endif
    int64_t total = 0;
    int64_t i = 0;
    while (i < n) {
        // Blocks small enough that a 32-bit accumulator cannot overflow; the compiler vectorises this.
        const int64_t end = std::min(n, i + (int64_t)(1 << 22));
        uint32_t acc = 0;
        for (; i < end; ++i) acc += (uint32_t)std::abs((int)a[i] - (int)b[i]);
        total += acc;
    }
    return total;
}
}  // namespace

std::vector<FrameDelta> scenecut_frame_deltas(const uint8_t* frames, int n, int width, int height,
                                              const ProcessingSize& ps) {
    ST2V_CHECK_ARG(n >= 0 && width > 0 && height > 0, "scenecut: bad frame geometry");
    std::vector<FrameDelta> out(n > 1 ? n - 1 : 0);
    if (n < 2) return out;
    const int64_t npix = (int64_t)ps.width * ps.height;
    const size_t in_bytes = (size_t)width * height * 3;
    // Each task owns a contiguous run of deltas and keeps only two HSV frames (its first frame's HSV is
    // computed again by the neighbouring task: one extra frame per task, no n-frame buffer).
    parallel_for(n - 1, [&](int64_t b, int64_t e, int) {
        std::unique_ptr<uint8_t[]> small(ps.resized ? new uint8_t[(size_t)npix * 3] : nullptr);
        std::unique_ptr<uint8_t[]> bufp(new uint8_t[(size_t)npix * 3]), bufq(new uint8_t[(size_t)npix * 3]);
        uint8_t* p = bufp.get();
        uint8_t* q = bufq.get();
        auto hsv_of = [&](int64_t f, uint8_t* dst) {
            const uint8_t* src = frames + (size_t)f * in_bytes;
            if (ps.resized) {
                resize_linear_u8c3(src, width, height, small.get(), ps.width, ps.height);
                src = small.get();
            }
            rgb_to_hsv_u8(src, npix, dst, dst + npix, dst + 2 * npix);
        };
        hsv_of(b, p);
        for (int64_t i = b; i < e; ++i) {
            hsv_of(i + 1, q);
            FrameDelta d;
            // numpy: np.sum(np.abs(a.astype(int32) - b.astype(int32))) / float(num_pixels)
            d.hue = (double)sad_u8(p, q, npix) / (double)npix;
            d.sat = (double)sad_u8(p + npix, q + npix, npix) / (double)npix;
            d.lum = (double)sad_u8(p + 2 * npix, q + 2 * npix, npix) / (double)npix;
            // sum(component * weight) / sum(|weight|), weights (1, 1, 1, 0), summed left to right.
            double s = 0.0;
            s += d.hue * 1.0;
            s += d.sat * 1.0;
            s += d.lum * 1.0;
            d.content = s / 3.0;
            out[i] = d;
            std::swap(p, q);
        }
    }, 4);
    return out;
}

ScenecutResult scenecut_detect(const std::vector<double>& content, ScenecutVersion v, const AdaptiveParams& p) {
    ST2V_CHECK_ARG(p.window_width >= 1, "window_width must be >= 1");
    const int n = (int)content.size();
    const int ww = p.window_width;
    ScenecutResult r;
    r.adaptive_ratio.assign(n, std::numeric_limits<double>::quiet_NaN());
    // 0.6.2: no previous cut yet -> any cut allowed. >= 0.6.3: last cut starts at frame 0 and the distance
    // is measured from the CURRENT frame (target + window_width).
    int last_cut = v == ScenecutVersion::k062 ? -1 : 0;
    for (int t = 2 * ww; t < n; ++t) {
        const int target = t - ww;
        double sum = 0.0;
        for (int k = t - 2 * ww; k <= t; ++k)
            if (k != target) sum += content[k];
        const double avg = sum / (2.0 * ww);
        const double st = content[target];
        double ratio;
        if (std::fabs(avg) >= 0.00001) ratio = std::min(st / avg, 255.0);
        else ratio = st >= p.min_content_val ? 255.0 : 0.0;
        r.adaptive_ratio[target] = ratio;
        if (ratio >= p.adaptive_threshold && st >= p.min_content_val) {
            bool ok;
            if (v == ScenecutVersion::k062) ok = last_cut < 0 || target - last_cut >= p.min_scene_len;
            else ok = t - last_cut >= p.min_scene_len;
            if (ok) {
                r.cuts.push_back(target);
                last_cut = target;
            }
        }
    }
    return r;
}

}  // namespace st2v::eval
