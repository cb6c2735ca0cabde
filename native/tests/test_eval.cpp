// Evaluation metrics against the official references in $ST2V_SHARED/golden:
//  - scenecut: PySceneDetect AdaptiveDetector per-frame values and cuts, every video x version x downscale
//    mode (videos regenerated with golden/scenecut/make_videos.sh into a temp cache when ffmpeg exists);
//  - mawe: the six warp cases of the official warp_with_flow + get_mawe arithmetic;
//  - flow: the 2 px/frame pan of video v06.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "eval/flow.h"
#include "eval/mawe.h"
#include "eval/raft.h"
#include "eval/scenecut.h"
#include "io/json.h"

namespace fs = std::filesystem;
using namespace st2v;
using st2v::io::Json;

namespace {

std::string shared_root() {
    const char* e = std::getenv("ST2V_SHARED");
    return e ? e : "../shared";
}

std::string read_text(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

bool have_ffmpeg() { return std::system("ffmpeg -version >/dev/null 2>&1") == 0; }

// The regenerated videos: $ST2V_EVAL_VIDEOS, else a cache under $TMPDIR shared with the ava tests.
// Generated into a fresh folder and renamed into place, so a half-made cache is never used.
std::string scenecut_videos(std::string* why) {
    if (const char* e = std::getenv("ST2V_EVAL_VIDEOS")) return e;
    const char* tmp = std::getenv("TMPDIR");
    const fs::path cache = fs::path(tmp ? tmp : "/tmp") / "st2v-golden-scenecut";
    if (fs::exists(cache / "videos" / "v13_smallstep_720_140.mp4")) return (cache / "videos").string();
    if (!have_ffmpeg()) {
        *why = "ffmpeg not found: cannot regenerate the golden/scenecut videos (apt-get install ffmpeg)";
        return "";
    }
    const fs::path work = fs::path(tmp ? tmp : "/tmp") / ("st2v-golden-scenecut.tmp" + std::to_string(getpid()));
    fs::remove_all(work);
    fs::create_directories(work);
    fs::copy_file(shared_root() + "/golden/scenecut/make_videos.sh", work / "make_videos.sh");
    const std::string cmd = "bash '" + (work / "make_videos.sh").string() + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
        *why = "make_videos.sh failed";
        return "";
    }
    std::error_code ec;
    fs::rename(work, cache, ec);
    if (ec) fs::remove_all(work);  // another process made the cache first
    return (cache / "videos").string();
}

// Streams rgb24 frames of a video through ffmpeg.
struct Decoder {
    FILE* p = nullptr;
    size_t frame_bytes;
    Decoder(const std::string& path, int w, int h) : frame_bytes((size_t)w * h * 3) {
        const std::string cmd = "ffmpeg -v error -i '" + path + "' -f rawvideo -pix_fmt rgb24 -";
        p = popen(cmd.c_str(), "r");
    }
    ~Decoder() {
        if (p) pclose(p);
    }
    // Appends up to n frames; returns how many were read.
    int read(std::vector<uint8_t>& buf, int n) {
        int got = 0;
        for (; got < n; ++got) {
            const size_t off = buf.size();
            buf.resize(off + frame_bytes);
            if (fread(buf.data() + off, 1, frame_bytes, p) != frame_bytes) {
                buf.resize(off);
                break;
            }
        }
        return got;
    }
};

struct Config {
    std::string version_key, mode;
    eval::ScenecutVersion version;
    bool downscale;
};

const Json& per_frame_of(const Json& results, const std::string& ver, const std::string& mode) {
    const Json* pf = results.find(ver)->find(mode)->find("per_frame");
    if (pf->is_string()) {
        // "identical to 0.6.2"
        const std::string other = pf->as_string().substr(std::string("identical to ").size());
        return per_frame_of(results, other, mode);
    }
    return *pf;
}

bool close_rel(double a, double b, double rel) { return std::fabs(a - b) <= rel * std::max(1.0, std::fabs(b)); }

}  // namespace

TEST(EvalScenecut, HsvAndResizeBasics) {
    // Pure colours through the 8-bit HSV path (OpenCV values).
    const uint8_t px[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 10, 20, 30};
    uint8_t H[6], S[6], V[6];
    eval::rgb_to_hsv_u8(px, 6, H, S, V);
    EXPECT_EQ(H[0], 0); EXPECT_EQ(S[0], 255); EXPECT_EQ(V[0], 255);
    EXPECT_EQ(H[1], 60); EXPECT_EQ(H[2], 120);
    EXPECT_EQ(S[3], 0); EXPECT_EQ(V[4], 0);
    EXPECT_EQ(H[5], 105); EXPECT_EQ(S[5], 170); EXPECT_EQ(V[5], 30);
    auto ps = eval::scenecut_processing_size(720, 720, eval::ScenecutVersion::k062, true);
    EXPECT_EQ(ps.width, 360);
    ps = eval::scenecut_processing_size(720, 720, eval::ScenecutVersion::kCurrent, true);
    EXPECT_EQ(ps.width, 256);
    ps = eval::scenecut_processing_size(1000, 562, eval::ScenecutVersion::k063, true);
    EXPECT_EQ(ps.width, 333);
    EXPECT_EQ(ps.height, 187);
    EXPECT_THROW(eval::parse_scenecut_version("0.5"), st2v::Error);
}

TEST(EvalScenecut, HsvEveryIsaAgreesOnAllColours) {
    // Every 24-bit colour through the widest kernel and the portable one.
    const int64_t n = 1 << 24;
    std::vector<uint8_t> rgb((size_t)n * 3);
    for (int64_t i = 0; i < n; ++i) {
        rgb[3 * i] = (uint8_t)(i >> 16);
        rgb[3 * i + 1] = (uint8_t)(i >> 8);
        rgb[3 * i + 2] = (uint8_t)i;
    }
    std::vector<uint8_t> a((size_t)n * 3), b((size_t)n * 3);
    const Isa prev = active_isa();
    eval::rgb_to_hsv_u8(rgb.data(), n, a.data(), a.data() + n, a.data() + 2 * n);
    ASSERT_TRUE(set_isa(Isa::kPortable));
    eval::rgb_to_hsv_u8(rgb.data(), n, b.data(), b.data() + n, b.data() + 2 * n);
    set_isa(prev);
    EXPECT_TRUE(a == b) << "isa " << isa_name(prev) << " differs from portable";
    // Spot checks of OpenCV's formula on the portable path (hsv_shift 12, cvRound tables).
    const int64_t i = (200 << 16) | (100 << 8) | 50;  // r=200 g=100 b=50: h = (50*hdiv[150]+2048)>>12 = 10
    EXPECT_EQ(b[i], 10);
    EXPECT_EQ(b[n + i], 191);
    EXPECT_EQ(b[2 * n + i], 200);
}

TEST(EvalScenecut, GoldenVideosAllVersions) {
    const std::string ref_path = shared_root() + "/golden/scenecut/scenecut_reference.json";
    if (!fs::exists(ref_path)) GTEST_SKIP() << "ST2V_SHARED golden/scenecut not found: " << ref_path;
    std::string why;
    const std::string dir = scenecut_videos(&why);
    if (dir.empty()) GTEST_SKIP() << why;
    const Json ref = Json::parse(read_text(ref_path));
    const Json& videos = *ref.find("videos");
    int checked_configs = 0;
    for (const auto& [name, v] : videos.members()) {
        const int w = (int)v.find("width")->as_int(), h = (int)v.find("height")->as_int();
        const int nframes = (int)v.find("num_frames")->as_int();
        const Json& results = *v.find("results");
        std::vector<Config> cfgs;
        for (const auto& [ver, modes] : results.members()) {
            eval::ScenecutVersion sv = ver == "0.6.2"   ? eval::ScenecutVersion::k062
                                       : ver == "0.6.3" ? eval::ScenecutVersion::k063
                                                        : eval::ScenecutVersion::kCurrent;
            for (const auto& [mode, r] : modes.members()) cfgs.push_back({ver, mode, sv, mode == "auto_downscale"});
        }
        // Per distinct processing size: streamed deltas (chunks overlap by one frame).
        std::map<std::pair<int, int>, std::vector<eval::FrameDelta>> deltas;
        std::map<std::pair<int, int>, eval::ProcessingSize> sizes;
        for (const Config& c : cfgs) {
            auto ps = eval::scenecut_processing_size(w, h, c.version, c.downscale);
            sizes[{ps.width, ps.height}] = ps;
        }
        Decoder dec(dir + "/" + name, w, h);
        ASSERT_NE(dec.p, nullptr);
        std::vector<uint8_t> buf;
        int total = 0;
        while (true) {
            const int got = dec.read(buf, 48);
            total += got;
            const int n = (int)(buf.size() / dec.frame_bytes);
            if (n >= 2)
                for (auto& [key, ps] : sizes) {
                    auto d = eval::scenecut_frame_deltas(buf.data(), n, w, h, ps);
                    auto& acc = deltas[key];
                    acc.insert(acc.end(), d.begin(), d.end());
                }
            if (got == 0) break;
            buf.erase(buf.begin(), buf.end() - dec.frame_bytes);  // keep the last frame for the next chunk
        }
        ASSERT_EQ(total, nframes) << name;
        for (const Config& c : cfgs) {
            SCOPED_TRACE(name + " " + c.version_key + " " + c.mode);
            const Json& r = *results.find(c.version_key)->find(c.mode);
            auto ps = eval::scenecut_processing_size(w, h, c.version, c.downscale);
            const auto& psz = r.find("processing_size")->items();
            ASSERT_EQ(ps.width, psz[0].as_int());
            ASSERT_EQ(ps.height, psz[1].as_int());
            const auto& d = deltas[{ps.width, ps.height}];
            ASSERT_EQ((int)d.size(), nframes - 1);
            const Json& pf = per_frame_of(results, c.version_key, c.mode);
            const auto& cv = pf.find("content_val")->items();
            const auto& dh = pf.find("delta_hue")->items();
            const auto& ds = pf.find("delta_sat")->items();
            const auto& dl = pf.find("delta_lum")->items();
            const auto& ar = pf.find("adaptive_ratio")->items();
            std::vector<double> content(nframes, 0.0);
            int bad = 0;
            for (int t = 1; t < nframes; ++t) {
                content[t] = d[t - 1].content;
                // Identical: the reference's doubles round-trip exactly through JSON.
                if (cv[t].as_double() != d[t - 1].content || dh[t].as_double() != d[t - 1].hue ||
                    ds[t].as_double() != d[t - 1].sat || dl[t].as_double() != d[t - 1].lum) {
                    if (++bad <= 3)
                        ADD_FAILURE() << "frame " << t << " content " << d[t - 1].content << " vs "
                                      << cv[t].as_double() << " (h " << d[t - 1].hue << " vs " << dh[t].as_double()
                                      << ")";
                }
            }
            EXPECT_EQ(bad, 0);
            auto res = eval::scenecut_detect(content, c.version);
            std::vector<int> want;
            for (const Json& k : r.find("cuts")->items()) want.push_back((int)k.as_int());
            EXPECT_EQ(res.cuts, want);
            for (int t = 0; t < nframes; ++t) {
                if (ar[t].is_null()) {
                    EXPECT_TRUE(std::isnan(res.adaptive_ratio[t])) << t;
                } else {
                    EXPECT_TRUE(close_rel(res.adaptive_ratio[t], ar[t].as_double(), 1e-12))
                        << t << ": " << res.adaptive_ratio[t] << " vs " << ar[t].as_double();
                }
            }
            ++checked_configs;
        }
    }
    EXPECT_EQ(checked_configs, 42);
}

namespace {
std::vector<uint8_t> b64(const std::string& s) {
    std::vector<uint8_t> out;
    int val = 0, bits = -8;
    for (char ch : s) {
        int d;
        if (ch >= 'A' && ch <= 'Z') d = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') d = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') d = ch - '0' + 52;
        else if (ch == '+') d = 62;
        else if (ch == '/') d = 63;
        else continue;
        val = (val << 6) | d;
        bits += 6;
        if (bits >= 0) {
            out.push_back((uint8_t)((val >> bits) & 0xff));
            bits -= 8;
        }
    }
    return out;
}
}  // namespace

TEST(EvalMawe, GoldenWarpCases) {
    const std::string p = shared_root() + "/golden/mawe/warp_reference.json";
    if (!fs::exists(p)) GTEST_SKIP() << "ST2V_SHARED golden/mawe not found: " << p;
    const Json ref = Json::parse(read_text(p));
    const double c = ref.find("c")->as_double();
    std::vector<eval::PairMetrics> first5;
    int n = 0;
    for (const Json& cs : ref.find("cases")->items()) {
        const std::string name = cs.find("name")->as_string();
        SCOPED_TRACE(name);
        const int h = (int)cs.find("shape_hw")->items()[0].as_int(), w = (int)cs.find("shape_hw")->items()[1].as_int();
        const auto f0 = b64(cs.find("left_rgb_b64")->as_string());
        const auto f1 = b64(cs.find("right_rgb_b64")->as_string());
        const auto fb = b64(cs.find("flow_b64")->as_string());
        ASSERT_EQ(f0.size(), (size_t)w * h * 3);
        ASSERT_EQ(fb.size(), (size_t)w * h * 2 * 4);
        std::vector<float> flow(w * h * 2);
        std::memcpy(flow.data(), fb.data(), fb.size());
        const auto m = eval::warp_pair_metrics(f0.data(), f1.data(), flow.data(), w, h);
        EXPECT_EQ(m.hits, cs.find("hit_pixels")->as_int());
        // The reference is torch float32 arithmetic; ours is double: equal to float32 precision.
        EXPECT_TRUE(close_rel(m.motion, cs.find("motion_mean_norm")->as_double(), 1e-6))
            << m.motion << " vs " << cs.find("motion_mean_norm")->as_double();
        EXPECT_TRUE(close_rel(m.warp_err, cs.find("warp_error")->as_double(), 1e-6))
            << m.warp_err << " vs " << cs.find("warp_error")->as_double();
        const Json* ratio = cs.find("ratio_warp_over_c_motion");
        const auto one = eval::mawe_summary({m}, eval::MaweVariant::kCode, c);
        if (ratio->is_null()) {
            EXPECT_TRUE(std::isinf(one.mawe));  // zero motion
        } else {
            EXPECT_TRUE(close_rel(one.mawe, ratio->as_double(), 1e-6)) << one.mawe << " vs " << ratio->as_double();
        }
        if (n < 5) first5.push_back(m);
        ++n;
    }
    EXPECT_EQ(n, 6);
    const auto s = eval::mawe_summary(first5, eval::MaweVariant::kCode, c);
    EXPECT_TRUE(close_rel(s.mawe, ref.find("mawe_over_finite_cases_1to5")->as_double(), 1e-6));
}

TEST(EvalMawe, TorchvisionResizeMatchesFixture) {
    // F.resize(uint8, antialias=False) outputs made by torchvision 0.14 (testdata/make_resize_ref.py).
    const fs::path p = fs::path(__FILE__).parent_path().parent_path() / "eval" / "testdata" / "resize_ref.bin";
    if (!fs::exists(p)) GTEST_SKIP() << "fixture not found: " << p;
    const std::string d = read_text(p.string());
    size_t off = 0;
    int cases = 0;
    while (off + 16 <= d.size()) {
        int32_t g[4];
        std::memcpy(g, d.data() + off, 16);
        off += 16;
        const size_t sb = (size_t)g[0] * g[1] * 3, db = (size_t)g[2] * g[3] * 3;
        ASSERT_LE(off + sb + db, d.size());
        std::vector<uint8_t> out(db);
        eval::resize_bilinear_torch_u8c3(reinterpret_cast<const uint8_t*>(d.data() + off), g[0], g[1], out.data(), g[2], g[3]);
        int diff = 0;
        for (size_t i = 0; i < db; ++i) diff += out[i] != (uint8_t)d[off + sb + i];
        EXPECT_EQ(diff, 0) << g[0] << "x" << g[1] << " -> " << g[2] << "x" << g[3];
        off += sb + db;
        ++cases;
    }
    EXPECT_EQ(cases, 4);
}

TEST(EvalMawe, TorchBilinearResizeIdentityAndConstant) {
    std::vector<uint8_t> img(8 * 6 * 3);
    for (size_t i = 0; i < img.size(); ++i) img[i] = (uint8_t)(i * 7);
    std::vector<uint8_t> out(img.size());
    eval::resize_bilinear_torch_u8c3(img.data(), 8, 6, out.data(), 8, 6);
    EXPECT_EQ(out, img);
    std::vector<uint8_t> flat(5 * 5 * 3, 77), big(13 * 11 * 3);
    eval::resize_bilinear_torch_u8c3(flat.data(), 5, 5, big.data(), 13, 11);
    for (uint8_t v : big) ASSERT_EQ(v, 77);
}

TEST(EvalFlow, RecoversPanOfV06) {
    const std::string ref_path = shared_root() + "/golden/scenecut/scenecut_reference.json";
    if (!fs::exists(ref_path)) GTEST_SKIP() << "ST2V_SHARED golden/scenecut not found";
    std::string why;
    const std::string dir = scenecut_videos(&why);
    if (dir.empty()) GTEST_SKIP() << why;
    // v06 crops a still at x = 2n (n < 150): the content moves by dx = -2 px per frame.
    const int w = 1280, h = 720;
    Decoder dec(dir + "/v06_pan_1280x720_240.mp4", w, h);
    std::vector<uint8_t> buf;
    ASSERT_EQ(dec.read(buf, 102), 102);
    for (int t : {10, 100}) {
        std::vector<float> g0(w * h), g1(w * h), flow(2 * w * h);
        eval::rgb_to_gray_f32(buf.data() + t * dec.frame_bytes, w * h, g0.data());
        eval::rgb_to_gray_f32(buf.data() + (t + 1) * dec.frame_bytes, w * h, g1.data());
        eval::dense_flow(g0.data(), g1.data(), w, h, flow.data());
        std::vector<float> dx(flow.begin(), flow.begin() + w * h);
        std::nth_element(dx.begin(), dx.begin() + dx.size() / 2, dx.end());
        const float med = dx[dx.size() / 2];
        std::printf("[ flow ] v06 frames %d->%d: median dx = %.4f px (truth -2)\n", t, t + 1, med);
        EXPECT_NEAR(med, -2.0f, 0.1f) << "pair " << t;
    }
}

TEST(EvalRaft, TinyRandomModelMatchesTorchvision) {
    // Fixture made by torchvision 0.14's RAFT classes (raft_large structure, small widths, random f16 weights,
    // BatchNorm context encoder with random statistics): two 128x128 frames and the flow after 1 and 12 updates.
    const fs::path dir = fs::path(__FILE__).parent_path().parent_path() / "eval" / "testdata";
    if (!fs::exists(dir / "raft_tiny.safetensors")) GTEST_SKIP() << "fixture not found: " << dir;
    auto model = eval::RaftModel::load((dir / "raft_tiny.safetensors").string());
    const std::string io = read_text((dir / "raft_tiny_io.bin").string());
    const int W = 128, H = 128;
    const size_t fb = (size_t)W * H * 3, nf = (size_t)2 * W * H;
    ASSERT_EQ(io.size(), 2 * fb + 2 * nf * 4);
    const uint8_t* f0 = reinterpret_cast<const uint8_t*>(io.data());
    const uint8_t* f1 = f0 + fb;
    for (int updates : {1, 12}) {
        std::vector<float> ref(nf), got(nf);
        std::memcpy(ref.data(), io.data() + 2 * fb + (updates == 1 ? 0 : nf * 4), nf * 4);
        model->flow(f0, f1, W, H, got.data(), updates);
        double worst = 0;
        size_t bad = 0;
        for (size_t i = 0; i < nf; ++i) {
            const double err = std::fabs(got[i] - ref[i]) / std::max(1.0, (double)std::fabs(ref[i]));
            worst = std::max(worst, err);
            if (err > 1e-4) ++bad;
        }
        std::printf("[ raft ] %d updates: worst rel err %.3g\n", updates, worst);
        EXPECT_EQ(bad, 0u) << updates << " updates: worst " << worst;
    }
    // Bad geometry is a typed error, not a crash.
    std::vector<float> out(2 * 100 * 100);
    EXPECT_THROW(model->flow(f0, f1, 100, 100, out.data()), st2v::Error);
}

TEST(EvalRaft, MissingWeightIsTypedError) {
    io::WeightStore ws;
    EXPECT_THROW(eval::RaftModel::from_weights(ws), st2v::Error);
}
