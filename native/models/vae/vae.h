// AutoencoderKL as diffusers 0.27.2 builds it for the SD-2.1 VAE (DownEncoderBlock2D / UpDecoderBlock2D,
// GroupNorm(32, eps 1e-6), single-head mid-block attention, Downsample pad (0,1,0,1) stride 2, nearest
// Upsample + conv), with tiled encode/decode for large inputs.
//
// Weights: canonical names (io/name_map.h: "vae." + diffusers names, to_q/to_k/to_v/to_out.0 as linear
// weights). Load any supported naming with enc::load_canonical(). The config (block widths, layers per block,
// latent channels) is detected from the weight shapes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/weights.h"

namespace st2v::vae {

struct Config {
    std::vector<int64_t> block_out;  // e.g. {128, 256, 512, 512}
    int layers_per_block = 2;
    int64_t in_channels = 3, out_channels = 3, latent_channels = 4;
    int groups = 32;
    float eps = 1e-6f;
    float scaling_factor = 0.18215f;
};

struct Posterior {
    Tensor mean, logvar, std;  // [N, latent, h, w]; logvar clamped to [-30, 20]
    Tensor moments;            // quant_conv output [N, 2*latent, h, w]
};

// Tiling parameters (pixel space; latent tile = pixel tile / 2^(levels-1)). Defaults as diffusers
// (tile 512 px, overlap factor 0.25) scaled to the model's downsampling factor.
struct TileOptions {
    int64_t latent_tile = 64;    // latent tile edge (decode); encode uses latent_tile * factor in pixels
    float overlap = 0.25f;       // fraction of the tile shared with the next one
};

class AutoencoderKL {
  public:
    // `prefix` e.g. "vae." (canonical) or "" for a store already relative to the VAE.
    // `groups`: GroupNorm groups (not visible in the weights; 32 for every SD VAE, the tiny st2v golden uses 8).
    AutoencoderKL(const io::WeightStore& w, const std::string& prefix = "vae.", int groups = 32);
    const Config& config() const { return cfg_; }
    int64_t factor() const { return int64_t(1) << (cfg_.block_out.size() - 1); }

    // x [N, 3, H, W] in [-1, 1] -> encoder output before quant_conv [N, 2*latent, H/f, W/f].
    // `inter` (optional) receives named intermediates: enc_down_block_i, enc_mid_block.
    Tensor encoder(const Tensor& x, std::vector<std::pair<std::string, Tensor>>* inter = nullptr) const;
    Posterior encode(const Tensor& x) const;
    // mean + std * noise (noise same shape as mean).
    static Tensor sample(const Posterior& p, const Tensor& noise);
    // z [N, latent, h, w] (unscaled) -> image [N, 3, h*f, w*f] (no clamp). `inter`: dec_mid_block, dec_up_block_i.
    Tensor decode(const Tensor& z, std::vector<std::pair<std::string, Tensor>>* inter = nullptr) const;

    // Tiled versions: overlapping tiles, each run through the full network, blended linearly across the overlap
    // (diffusers blend_v/blend_h scheme). Inputs smaller than one tile fall back to the untiled path.
    Tensor decode_tiled(const Tensor& z, const TileOptions& o = {}) const;
    Posterior encode_tiled(const Tensor& x, const TileOptions& o = {}) const;

  private:
    struct Res { std::string p; bool shortcut; };
    Tensor conv(const Tensor& x, const std::string& name, int k, int stride = 1, bool asym = false) const;
    Tensor gn(const Tensor& x, const std::string& name, bool silu) const;
    Tensor resnet(const Tensor& x, const std::string& p) const;
    Tensor attn(const Tensor& x, const std::string& p) const;
    Tensor mid(const Tensor& x, const std::string& p) const;
    const Tensor& W(const std::string& n) const;
    const Tensor* F(const std::string& n) const;

    io::WeightStore w_;
    std::string prefix_;
    Config cfg_;
};

// A random-weight AutoencoderKL in canonical "vae." names (norms w = 1 + 0.1N, b = 0.05N; convs N(0, 1/fan_in)),
// latent 4, for benches and tests. Defined in vae_bench.cpp.
io::WeightStore make_random_vae(const std::vector<int64_t>& block_out, int layers, uint32_t seed);

}  // namespace st2v::vae
