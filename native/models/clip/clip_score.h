// CLIP score of a video: mean over frames of 100 x cos(text features, image features), with the OpenCLIP towers
// exactly as open_clip 2.24.0 computes encode_text / encode_image for inference.
//
// What the paper leaves open (../shared/docs/metrics.md §4: the CLIP model, its preprocessing and the frame
// subsampling are not specified anywhere) and what we chose:
//  - model: the OpenCLIP ViT-H-14 towers (laion2b_s32b_b79k, the model StreamingT2V itself uses for the APM);
//    any OpenCLIP ViT model whose weights are given works (shapes decide the sizes).
//  - text: open_clip encode_text: all L text blocks (L-1 in text_encoder.* + the last in text_last_block.*, see
//    io/name_map.h), ln_final, the features at argmax(token id) (the end-of-text token; the first maximum on ties,
//    as torch.argmax), @ text_projection.
//  - image: open_clip's inference transform (image_transform(224, is_train=False), resize_mode 'shortest'):
//    torchvision Resize(224, BICUBIC) on a PIL image = Pillow's 8-bit bicubic resample of the shortest side to 224
//    (the other side int(224 * long / short)), CenterCrop(224) (offsets round-half-to-even), ToTensor (/255),
//    Normalize(CLIP mean, std) — NOT the kornia resize of the APM path (OpenClipImageTower::forward). Then
//    ln_post(token 0) @ proj.
//  - every frame, no subsampling; the score is the RAW mean of 100 x cos over frames: negative cosines are NOT
//    clamped to 0 (standard CLIPScore uses max(cos, 0) and a weight of 2.5; the paper states neither).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/weights.h"
#include "models/clip/clip.h"

namespace st2v::enc {

// open_clip's inference image transform on one rgb24 frame (h rows x w columns x 3, row-major):
// -> [3, size, size] f32 written to `out` (3 * size * size floats). Exact to Pillow's fixed-point bicubic.
void openclip_preprocess_rgb24(const uint8_t* rgb, int w, int h, int size, float* out);
// The uint8 image after Resize + CenterCrop (size x size x 3), before ToTensor/Normalize: for checking.
std::vector<uint8_t> openclip_resize_crop_rgb24(const uint8_t* rgb, int w, int h, int size);
// Pillow's Image.resize(..., BICUBIC) on an 8-bit RGB image (w x h -> ow x oh), two passes with 8-bit rounding.
std::vector<uint8_t> pil_resize_bicubic_rgb24(const uint8_t* rgb, int w, int h, int ow, int oh);

class OpenClipScoreModel {
  public:
    // `w` in canonical names (io/name_map.h): text_encoder.text_model.*, text_last_block.*, image_encoder.model.*.
    // Missing towers -> ERR_WEIGHTS_MISSING naming what is missing.
    explicit OpenClipScoreModel(const io::WeightStore& w);
    // A model folder from `st2v convert` (or an open_clip safetensors file in any supported naming).
    static std::shared_ptr<OpenClipScoreModel> load(const std::string& path);

    // ids [B, L] i32/i64 -> [B, embed] (not normalised), as open_clip encode_text.
    Tensor encode_text(const Tensor& ids) const;
    // Preprocessed pixels [N, 3, S, S] -> [N, embed] (not normalised), as open_clip encode_image.
    Tensor encode_image(const Tensor& pixels) const;
    // n rgb24 frames (h x w) -> [n, embed]: preprocessing (frames spread over the thread pool) + encode_image.
    Tensor encode_frames_rgb24(const uint8_t* frames, int n, int w, int h) const;

    int64_t image_size() const { return image_.image_size(); }
    int64_t embed_dim() const { return embed_; }
    int64_t context_length() const { return context_; }

  private:
    ClipTextModel text_;
    OpenClipImageTower image_;
    Tensor text_projection_T_;  // [embed, width] f32
    int64_t embed_ = 0, context_ = 0;
};

// 100 x cos(text, image_i) for each row i of image_feats [N, E] against text_feat [E] or [1, E] (both
// L2-normalised here, in double). Raw values (no clamping).
std::vector<double> clip_scores(const Tensor& text_feat, const Tensor& image_feats);

}  // namespace st2v::enc
