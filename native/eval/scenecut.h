// SCuts: PySceneDetect's AdaptiveDetector with default parameters, reproduced bit for bit.
//
// The pipeline (docs/metrics.md §5): optional SceneManager downscale (OpenCV 4.6 INTER_LINEAR on uint8,
// fixed point) -> OpenCV 8-bit BGR2HSV -> per-channel mean absolute difference to the previous frame ->
// content_val = (dH + dS + dV) / 3 -> adaptive ratio over a +-2 frame window -> cut rule with
// min_content_val 15, adaptive_threshold 3 and min_scene_len 15 (whose form depends on the version).
//
// Frames come in as packed rgb24 (ffmpeg's output); the detector's BGR order is handled internally.
// All functions are pure and thread-safe; scenecut_frame_deltas spreads frames over the current pool.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace st2v::eval {

enum class ScenecutVersion : int { k062 = 0, k063 = 1, kCurrent = 2 };

// "0.6.2" | "0.6.3" | "current" (aliases "0.7", "head"); anything else -> ERR_INVALID_ARG.
ScenecutVersion parse_scenecut_version(const std::string& s);
const char* scenecut_version_name(ScenecutVersion v);

struct ProcessingSize {
    int width = 0, height = 0;  // size the detector works on
    double factor = 1;          // SceneManager's downscale factor (1 = no resize)
    bool resized = false;
};
// SceneManager's auto-downscale rule for the version (<= 0.6.4: integer factor width // 256;
// >= 0.6.5: float factor width / 256). downscale=false keeps the input size.
ProcessingSize scenecut_processing_size(int width, int height, ScenecutVersion v, bool downscale);

// OpenCV 4.6 cv::resize(INTER_LINEAR) of a packed 3-channel uint8 image, bit-exact (incl. the INTER_AREA
// fast path OpenCV takes for an exact 2x downscale).
void resize_linear_u8c3(const uint8_t* src, int sw, int sh, uint8_t* dst, int dw, int dh);

// OpenCV 8-bit COLOR_BGR2HSV (H 0..179) from packed RGB input, into three planes.
void rgb_to_hsv_u8(const uint8_t* rgb, int64_t npix, uint8_t* h, uint8_t* s, uint8_t* v);

struct FrameDelta {
    double hue = 0, sat = 0, lum = 0, content = 0;
};

// n packed rgb24 frames (width x height) -> n-1 deltas, entry i between frames i and i+1.
std::vector<FrameDelta> scenecut_frame_deltas(const uint8_t* frames, int n, int width, int height,
                                              const ProcessingSize& ps);

struct AdaptiveParams {
    double adaptive_threshold = 3.0;
    int min_scene_len = 15;
    int window_width = 2;
    double min_content_val = 15.0;
};

struct ScenecutResult {
    std::vector<int> cuts;               // first frame of each new scene
    std::vector<double> adaptive_ratio;  // per frame; NaN where the detector produces none
};

// content[t] = content_val of frame t (content[0] = 0).
ScenecutResult scenecut_detect(const std::vector<double>& content, ScenecutVersion v,
                               const AdaptiveParams& p = AdaptiveParams());

}  // namespace st2v::eval
