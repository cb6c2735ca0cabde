// The ONE name-mapping table: every source naming of every supported checkpoint -> canonical names.
// (No other file holds weight-name aliases; `st2v convert` calls this through the addon.)
//
// Canonical names = the names of the official `streaming_t2v.ckpt` state dict, so every component file of a
// converted model folder can be merged into one WeightStore that looks exactly like the official checkpoint:
//   unet           base_model.*                 extension UNet3D incl. APM (attn2.conv/conv_ln/alpha) + CAM mergers
//   cam            unet.*                       the CAM ControlNet branch
//   resampler      resampler.*                  APM image-token resampler
//   text_encoder   text_encoder.text_model.*    HF CLIPTextModel names (OpenCLIP ViT-H text tower, 23 layers)
//   image_encoder  image_encoder.model.*        open_clip names (the OpenCLIP model minus transformer.*)
//   vae            vae.*                        diffusers AutoencoderKL names (to_q/to_k/to_v/to_out.0)
//   enhancer       enhancer.*                   MS-Vid2Vid-XL UNet names as in non_ema_0035000.pth (no prefix there)
//   text_last_block text_last_block.*           the LAST OpenCLIP text block in HF layer names (layer_norm1,
//                                               self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1/fc2): not in
//                                               streaming_t2v.ckpt; only the CLIP score (full encode_text) uses it
//
// Source namings (detect_naming() picks one from the key set):
//   "streamingt2v"   official checkpoint (identity; component from the prefix)
//   "diffusers_unet" diffusers UNet3DConditionModel (text-to-video-ms-1.7b unet/)       -> base_model.*
//   "diffusers_vae"  diffusers AutoencoderKL, new (to_q..) or deprecated (query/key/value/proj_attn) names -> vae.*
//   "hf_clip_text"   HF CLIPTextModel (text_model.*)                                      -> text_encoder.*
//   "ldm_vae"        LDM / SD AutoencoderKL (encoder.down.{i}.block.{j}, attn_1.{q,k,v,proj_out} as 1x1 convs),
//                    optionally under first_stage_model. (a whole SD checkpoint: other keys are ignored) -> vae.*
//   "openclip"       open_clip_pytorch_model.bin: visual.* and the text-side leftovers -> image_encoder.model.*,
//                    the text tower -> text_encoder.text_model.* (HF names; in_proj split in q/k/v rows; only the
//                    first L-1 of L blocks: StreamingT2V and the enhancer use those) and the last block ->
//                    text_last_block.* (same HF layer names; for the CLIP score)
//   "enhancer"       MS-Vid2Vid-XL non_ema_*.pth                                         -> enhancer.*
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace st2v::io {

struct MappedTensor {
    std::string source;     // key in the source checkpoint
    std::string target;     // canonical name
    std::string component;  // unet, cam, resampler, text_encoder, image_encoder, vae, enhancer, text_last_block
    Shape shape;            // target shape
    // How the target is made from the source: "copy" (same shape), "reshape" (same elements, new shape),
    // "rows" (rows [row_begin, row_end) of dim 0; the other dims unchanged).
    std::string op = "copy";
    int64_t row_begin = 0, row_end = 0;
};

struct NameMapResult {
    std::string naming;
    std::vector<MappedTensor> mapped;
    std::vector<std::string> dropped;     // known and deliberately not used (e.g. the last OpenCLIP text block)
    std::vector<std::string> unmapped;    // not understood: the caller warns once
};

// The naming of a set of keys, or "" if none fits.
std::string detect_naming(const std::vector<std::string>& keys);

// Maps every key of one source (naming as above; "" = detect). Throws ERR_INVALID_ARG for an unknown naming
// and ERR_SHAPE_MISMATCH when a tensor that needs a shape transform has an unexpected shape.
NameMapResult map_names(const std::string& naming, const std::vector<std::pair<std::string, Shape>>& keys);

// Component of a canonical name ("" if it has no known prefix).
std::string component_of(const std::string& canonical);

// All namings and components, for help texts and validation.
const std::vector<std::string>& namings();
const std::vector<std::string>& components();

}  // namespace st2v::io
