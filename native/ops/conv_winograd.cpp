// 3x3 convolution, stride 1, padding 1, by Winograd F(2x2, 3x3) (Lavin & Gray 2016).
//
// Each 2x2 block of outputs ("tile") of an output channel is A^T [ sum_c (G g_oc G^T) .* (B^T d_c B) ] A, where
// d_c is the 4x4 input patch of channel c around the tile (zero outside the image) and g_oc the 3x3 kernel. The sum
// over c at each of the 16 positions xi of the 4x4 transformed tile is a GEMM: M[xi] (O x T) = U[xi] (O x C) *
// V[xi] (C x T), T = tiles. Per output element that is 16 / 4 = 4 multiply-adds per input channel instead of 9
// (2.25x fewer), paid for by the two transforms (additions only, linear in C * T and O * T).
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]   A^T = [1 1 1 0; 0 1 -1 -1]
//
// Layout: U[xi] is packed once per call (PrepackedA, the GEMM driver's panel order); V and M are [16][C or O][Tg]
// with the tiles of a group contiguous (tile rows of the images in order, tx fastest), so the GEMM's B operand is
// contiguous along its rows (plain copies into the panels). A group is about 512 tiles of whole tile rows (several
// small images, or a band of a large one), so V and M stay a few MiB whatever the image size. The transforms run 8 tiles of a tile row per AVX2 vector (the input's
// even / odd columns deinterleaved from a zero-padded copy of the plane); tiles past the last full 8 run scalar.
// The sums run in a fixed order and the GEMMs' per-element order does not depend on the thread count, so the
// result is the same bits for any number of threads. The error is that of the direct method times a small
// constant (the transforms' 0.5 factors and 3-term sums): GemmConv.Conv3x3WinogradMatchesDoubleReference holds it to
// the same 1e-5 of the output scale as the im2col path.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/cpu.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/gemm_internal.h"
#include "ops/weight_util.h"

namespace st2v::ops::detail {

WinogradMode winograd_mode_from_env(const char* name) {
    const char* e = std::getenv(name);
    if (e && (std::strcmp(e, "off") == 0 || std::strcmp(e, "0") == 0)) return WinogradMode::kOff;
    if (e && std::strcmp(e, "always") == 0) return WinogradMode::kAlways;
    return WinogradMode::kAuto;
}

namespace {

// ST2V_WINOGRAD=off|auto|always (default auto): the process's starting mode (docs/native.md).
std::atomic<int> g_winograd{static_cast<int>(winograd_mode_from_env("ST2V_WINOGRAD"))};

struct Geometry {
    int64_t N, C, H, W, O;
    int64_t th, tw, T;  // tile rows / columns per image, tiles per image
};

// U[xi][o][c] = (G g G^T)[xi] for the kernel g = w[o][c] (any float dtype), rows o in [o0, o1).
void transform_weights(const void* w, DType wdt, int64_t O, int64_t C, int64_t o0, int64_t o1, float* U) {
    for (int64_t o = o0; o < o1; ++o)
        for (int64_t c = 0; c < C; ++c) {
            float g[3][3];
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j) g[i][j] = load_w(w, wdt, ((o * C + c) * 3 + i) * 3 + j);
            float t[4][3];  // G g
            for (int j = 0; j < 3; ++j) {
                t[0][j] = g[0][j];
                t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
                t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
                t[3][j] = g[2][j];
            }
            for (int i = 0; i < 4; ++i) {  // (G g) G^T
                const float u[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                                    t[i][2]};
                for (int j = 0; j < 4; ++j) U[((i * 4 + j) * O + o) * C + c] = u[j];
            }
        }
}

// B^T d B for one tile (d: 4 x 4, row stride ld), stored to V[xi * vs].
inline void input_tile_scalar(const float* d, int64_t ld, float* V, int64_t vs) {
    float t[4][4];
    for (int j = 0; j < 4; ++j) {
        const float d0 = d[j], d1 = d[ld + j], d2 = d[2 * ld + j], d3 = d[3 * ld + j];
        t[0][j] = d0 - d2;
        t[1][j] = d1 + d2;
        t[2][j] = d2 - d1;
        t[3][j] = d1 - d3;
    }
    for (int i = 0; i < 4; ++i) {
        V[(i * 4 + 0) * vs] = t[i][0] - t[i][2];
        V[(i * 4 + 1) * vs] = t[i][1] + t[i][2];
        V[(i * 4 + 2) * vs] = t[i][2] - t[i][1];
        V[(i * 4 + 3) * vs] = t[i][1] - t[i][3];
    }
}

// A^T m A for one tile (m[xi * ms]) plus bias: the 2 x 2 outputs y[i][j] (the caller clips them to the image).
inline void output_tile_scalar(const float* m, int64_t ms, float bias, float y[2][2]) {
    float s[2][4];
    for (int j = 0; j < 4; ++j) {
        const float m0 = m[(0 + j) * ms], m1 = m[(4 + j) * ms], m2 = m[(8 + j) * ms], m3 = m[(12 + j) * ms];
        s[0][j] = m0 + m1 + m2;
        s[1][j] = m1 - m2 - m3;
    }
    for (int i = 0; i < 2; ++i) {
        y[i][0] = s[i][0] + s[i][1] + s[i][2] + bias;
        y[i][1] = s[i][1] - s[i][2] - s[i][3] + bias;
    }
}

// Even and odd elements of the 16 floats at p: {p[0], p[2], ..., p[14]} and {p[1], ..., p[15]}.
__attribute__((target("avx2,fma"))) inline void deinterleave16(const float* p, __m256* even, __m256* odd) {
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

// Tile rows [ty0, ty1) of one channel plane x (H x W) of one image -> V (tile (ty, tx) at V[(ty - ty0) * tw + tx],
// positions xi at V[xi * vs]). pad: scratch of (2 (ty1 - ty0) + 2) x (2 tw + 2) floats, the rows the tiles read with
// a zero border (pad[r][j] = x[2 ty0 - 1 + r][j - 1], zero outside the image).
__attribute__((target("avx2,fma"))) void input_rows(const float* x, const Geometry& g, int64_t ty0, int64_t ty1,
                                                    float* pad, float* V, int64_t vs) {
    const int64_t pw = 2 * g.tw + 2, ph = 2 * (ty1 - ty0) + 2;
    for (int64_t r = 0; r < ph; ++r) {  // each pad element written once: the image row and its zero border
        const int64_t iy = 2 * ty0 - 1 + r;
        float* row = pad + r * pw;
        if (iy >= 0 && iy < g.H) {
            row[0] = 0.f;
            std::memcpy(row + 1, x + iy * g.W, sizeof(float) * static_cast<size_t>(g.W));
            std::memset(row + 1 + g.W, 0, sizeof(float) * static_cast<size_t>(pw - 1 - g.W));
        } else {
            std::memset(row, 0, sizeof(float) * static_cast<size_t>(pw));
        }
    }
    for (int64_t ty = ty0; ty < ty1; ++ty) {
        const float* rows = pad + 2 * (ty - ty0) * pw;
        float* v = V + (ty - ty0) * g.tw;
        int64_t tx = 0;
        for (; tx + 8 <= g.tw; tx += 8) {
            __m256 t[4][4];
            {
                __m256 d[4][4];
                for (int r = 0; r < 4; ++r) {
                    const float* p = rows + r * pw + 2 * tx;
                    deinterleave16(p, &d[r][0], &d[r][1]);
                    deinterleave16(p + 2, &d[r][2], &d[r][3]);
                }
                for (int j = 0; j < 4; ++j) {
                    t[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
                    t[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
                    t[2][j] = _mm256_sub_ps(d[2][j], d[1][j]);
                    t[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
                }
            }
            for (int i = 0; i < 4; ++i) {
                _mm256_storeu_ps(v + (i * 4 + 0) * vs + tx, _mm256_sub_ps(t[i][0], t[i][2]));
                _mm256_storeu_ps(v + (i * 4 + 1) * vs + tx, _mm256_add_ps(t[i][1], t[i][2]));
                _mm256_storeu_ps(v + (i * 4 + 2) * vs + tx, _mm256_sub_ps(t[i][2], t[i][1]));
                _mm256_storeu_ps(v + (i * 4 + 3) * vs + tx, _mm256_sub_ps(t[i][1], t[i][3]));
            }
        }
        for (; tx < g.tw; ++tx) input_tile_scalar(rows + 2 * tx, pw, v + tx, vs);
    }
}

// Tile rows [ty0, ty1) of one output channel of one image (tile (ty, tx) at M[(ty - ty0) * tw + tx], positions at
// M[xi * ms]) -> y (H x W) with the bias.
__attribute__((target("avx2,fma"))) void output_rows(const float* M, int64_t ms, const Geometry& g, int64_t ty0,
                                                     int64_t ty1, float bias, float* y) {
    const __m256 vb = _mm256_set1_ps(bias);
    for (int64_t ty = ty0; ty < ty1; ++ty) {
        const float* m = M + (ty - ty0) * g.tw;
        float* y0 = y + 2 * ty * g.W;
        const bool row1 = 2 * ty + 1 < g.H;
        int64_t tx = 0;
        for (; tx + 8 <= g.tw && 2 * (tx + 8) <= g.W; tx += 8) {
            __m256 s[2][4];
            for (int j = 0; j < 4; ++j) {
                const __m256 m0 = _mm256_loadu_ps(m + (0 + j) * ms + tx), m1 = _mm256_loadu_ps(m + (4 + j) * ms + tx),
                             m2 = _mm256_loadu_ps(m + (8 + j) * ms + tx), m3 = _mm256_loadu_ps(m + (12 + j) * ms + tx);
                s[0][j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
                s[1][j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
            }
            for (int i = 0; i < 2; ++i) {
                if (i == 1 && !row1) break;
                const __m256 e = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[i][0], s[i][1]), s[i][2]), vb);
                const __m256 o = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[i][1], s[i][2]), s[i][3]), vb);
                const __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
                float* yr = y0 + i * g.W + 2 * tx;
                _mm256_storeu_ps(yr, _mm256_permute2f128_ps(lo, hi, 0x20));
                _mm256_storeu_ps(yr + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
            }
        }
        for (; tx < g.tw; ++tx) {
            float t[2][2];
            output_tile_scalar(m + tx, ms, bias, t);
            for (int i = 0; i < 2 && 2 * ty + i < g.H; ++i)
                for (int j = 0; j < 2 && 2 * tx + j < g.W; ++j) y0[i * g.W + 2 * tx + j] = t[i][j];
        }
    }
}

}  // namespace

WinogradMode set_conv_winograd(WinogradMode mode) { return static_cast<WinogradMode>(g_winograd.exchange(static_cast<int>(mode))); }

bool conv3x3_winograd_applies(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W) {
    const auto mode = static_cast<WinogradMode>(g_winograd.load(std::memory_order_relaxed));
    if (mode == WinogradMode::kOff || active_isa() == Isa::kPortable || !cpu_features().avx2 || !cpu_features().fma)
        return false;  // the transforms are AVX2 code
    if (mode == WinogradMode::kAlways) return true;
    // Measured on Zen 3, 2 threads (ABA against the im2col GEMM, f16 weights, 16 or 32 images): 1.35-1.55x at 32x32
    // with 128 or 320 channels and 16x16 with 640, 1.1-1.3x at 8x8 / 512, 16x16 / 256 and 64x64 / 96, but 0.88x at
    // 64x64 / 64, 0.76x for 32 -> 64 channels and 0.63x at 4x4 / 512: the GEMMs' depth is C (shallow GEMMs lose more
    // to their C tiles than Winograd saves), and the weight transform (16 O C floats per call) needs enough tiles.
    const int64_t tiles = N * ((H + 1) / 2) * ((W + 1) / 2);
    return C >= 96 && O >= 64 && tiles >= 256;
}

void conv3x3_winograd(const float* x, int64_t N, int64_t C, int64_t H, int64_t W, const void* w, DType wdt, int64_t O,
                      const float* bias, float* y) {
    Geometry g{N, C, H, W, O, (H + 1) / 2, (W + 1) / 2, 0};
    g.T = g.th * g.tw;
    ThreadPool& pool = current_pool();
    // U, then each of its 16 planes packed in the GEMM's panel order
    Tensor U = Tensor::empty({16, O, C});
    pool.parallel_for(O, [&](int64_t o0, int64_t o1, int) { transform_weights(w, wdt, O, C, o0, o1, U.f32()); });
    std::vector<PrepackedA> pre(16);
    std::vector<MatPack> usrc(16);
    for (int xi = 0; xi < 16; ++xi) {
        usrc[static_cast<size_t>(xi)] = MatPack{U.f32() + xi * O * C, DType::F32, C, 1};
        prepack_a(O, C, {pack_mat, &usrc[static_cast<size_t>(xi)]}, &pre[static_cast<size_t>(xi)]);
    }
    U = Tensor();
    // Groups of whole tile rows, about 512 tiles each: several images when they are small, a band of one image when
    // it is large, so V and M stay a few MiB whatever the image size.
    const int64_t rows_per_group = std::max<int64_t>(1, 512 / g.tw);
    const int64_t total_rows = N * g.th;
    for (int64_t r0 = 0; r0 < total_rows; r0 += rows_per_group) {
        const int64_t r1 = std::min(total_rows, r0 + rows_per_group), Tg = (r1 - r0) * g.tw;
        // the pieces of the group: (image, tile rows [a, b)) at tile offset off
        struct Piece {
            int64_t n, a, b, off;
        };
        std::vector<Piece> pieces;
        for (int64_t r = r0; r < r1;) {
            const int64_t n = r / g.th, a = r % g.th, b = std::min(g.th, a + (r1 - r));
            pieces.push_back({n, a, b, (r - r0) * g.tw});
            r += b - a;
        }
        const int64_t np = static_cast<int64_t>(pieces.size());
        Tensor V = Tensor::empty({16, C, Tg}), M = Tensor::empty({16, O, Tg});
        float* v = V.f32();
        float* m = M.f32();
        const int64_t pad_floats = (2 * rows_per_group + 2) * (2 * g.tw + 2);
        pool.parallel_for(np * C, [&](int64_t b, int64_t e, int) {
            std::unique_ptr<float[]> pad(new float[static_cast<size_t>(pad_floats)]);  // input_rows writes all of it
            for (int64_t i = b; i < e; ++i) {
                const Piece& pc = pieces[static_cast<size_t>(i / C)];
                const int64_t c = i % C;
                input_rows(x + (pc.n * C + c) * H * W, g, pc.a, pc.b, pad.get(), v + c * Tg + pc.off, C * Tg);
            }
        });
        for (int xi = 0; xi < 16; ++xi) {
            MatPack vsrc{v + xi * C * Tg, DType::F32, 1, Tg};  // rows (tiles) contiguous, depth (channels) Tg apart
            gemm_packed(O, Tg, C, {pack_prepacked, &pre[static_cast<size_t>(xi)]}, {pack_mat, &vsrc}, m + xi * O * Tg,
                        Tg, GemmEpilogue{});
        }
        pool.parallel_for(np * O, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) {
                const Piece& pc = pieces[static_cast<size_t>(i / O)];
                const int64_t o = i % O;
                output_rows(m + o * Tg + pc.off, O * Tg, g, pc.a, pc.b, bias ? bias[o] : 0.f, y + (pc.n * O + o) * H * W);
            }
        });
    }
}

}  // namespace st2v::ops::detail
