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
    // Spatial downsampling of the latents: 2^(levels - 1).
    int64_t factor() const { return int64_t(1) << (block_out.size() - 1); }
};

struct Posterior {
    Tensor mean, logvar, std;  // [N, latent, h, w]; logvar clamped to [-30, 20]
    Tensor moments;            // quant_conv output [N, 2*latent, h, w]
};

// Tiling parameters of the exact banded decode_tiled / encode_tiled: `band_rows` is the height, in rows of each
// resolution level, of the horizontal bands the full-resolution blocks are computed in (0 = auto:
// max(8, ceil(image height / 48)); smaller bands need less memory and recompute more halo rows).
// latent_tile and overlap belonged to the earlier diffusers-style overlapping tiles and are no longer used.
struct TileOptions {
    int64_t latent_tile = 64;    // unused (kept for source compatibility)
    float overlap = 0.25f;       // unused (kept for source compatibility)
    int64_t band_rows = 0;       // band height in rows (0 = auto)
};

struct BandRunner;  // vae.cpp: the banded (row-strip) computation behind decode_tiled / encode_tiled
struct CpuVae;

class AutoencoderKL {
  public:
    // `prefix` e.g. "vae." (canonical) or "" for a store already relative to the VAE.
    // `groups`: GroupNorm groups (not visible in the weights; 32 for every SD VAE, the tiny st2v golden uses 8).
    AutoencoderKL(const io::WeightStore& w, const std::string& prefix = "vae.", int groups = 32);
    const Config& config() const { return cfg_; }
    int64_t factor() const { return cfg_.factor(); }

    // x [N, 3, H, W] in [-1, 1] -> encoder output before quant_conv [N, 2*latent, H/f, W/f].
    // `inter` (optional) receives named intermediates: enc_down_block_i, enc_mid_block.
    Tensor encoder(const Tensor& x, std::vector<std::pair<std::string, Tensor>>* inter = nullptr) const;
    Posterior encode(const Tensor& x) const;
    // mean + std * noise (noise same shape as mean).
    static Tensor sample(const Posterior& p, const Tensor& noise);
    // z [N, latent, h, w] (unscaled) -> image [N, 3, h*f, w*f] (no clamp). `inter`: dec_mid_block, dec_up_block_i.
    Tensor decode(const Tensor& z, std::vector<std::pair<std::string, Tensor>>* inter = nullptr) const;

    // Memory-bounded decode, equal to decode() up to float rounding (measured ~1e-6 max-abs; tested <= 1e-3).
    // conv_in and the mid block (with its attention over all h*w latent tokens) run untiled at latent
    // resolution. The up blocks then run in horizontal bands with halos that cover the receptive field of the
    // 3x3 convolutions (2 rows per resnet, 1 per conv, mapped through the 2x upsamplers), so every band's
    // convolution outputs are those of the whole image. GroupNorm uses whole-image statistics, accumulated band
    // by band in double (shifted sums, as ops::group_norm) in a pass before the norm is applied:
    //   - per resnet, pass A computes conv1 band by band only for the norm2 statistics (discarded), pass B
    //     recomputes it and writes the resnet output; statistics of a stored tensor are gathered as it is written;
    //   - the upsampler (nearest 2x + conv) is never stored: it is recomputed on demand from the previous block's
    //     output for the next resnet's passes (one extra statistics pass).
    // Stored activations are row chunks freed as soon as no later band needs them, so at any time about one
    // full tensor of the current level is alive (input chunks not yet consumed + output chunks written) plus a
    // few band-sized temporaries: for the SD-2.1 structure (block_out {128, 256, 512, 512}) at a 90x160 latent
    // that is ~1 tensor of [128, 720, 1280] against ~5 for decode() (which holds the 256-channel upsampler output
    // and its GroupNorm and conv1 outputs together); the bench vae_decode_tiled_90x160 reports the ratio
    // (measured with random SD-2.1-width weights, auto bands of 15 rows: 526 MB vs 2359 MB = 0.223, max diff 6.3e-6,
    // 1.72x the CPU time of decode()).
    // Costs ~1.7-1.9x the compute of decode() (conv1 of each resnet twice, upsampler convs three times, halos).
    // Samples of a batch are decoded one by one.
    Tensor decode_tiled(const Tensor& z, const TileOptions& o = {}) const;
    // Memory-bounded encode, equal to encode() up to float rounding, by the same scheme: the down blocks run in
    // bands (conv_in and each Downsample2D conv recomputed on demand from the image / the previous block's stored
    // output, never stored), the mid block and the output convolutions untiled at latent resolution.
    Posterior encode_tiled(const Tensor& x, const TileOptions& o = {}) const;

    // The bound weights and their name prefix (a device copy uploads them: vae/device_vae.h).
    const io::WeightStore& weights() const { return w_; }
    const std::string& prefix() const { return prefix_; }

  private:
    friend struct BandRunner;
    friend struct CpuVae;  // vae.cpp: the CPU backend of the shared graph (vae_graph.h)
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

// quant_conv output [N, 2*latent, h, w] -> the diagonal Gaussian (logvar clamped to [-30, 20], std = exp(logvar/2)).
Posterior posterior_from_moments(Tensor moments);

// A random-weight AutoencoderKL in canonical "vae." names (norms w = 1 + 0.1N, b = 0.05N; convs N(0, 1/fan_in)),
// latent 4, for benches and tests. Defined in vae_bench.cpp.
io::WeightStore make_random_vae(const std::vector<int64_t>& block_out, int layers, uint32_t seed);

}  // namespace st2v::vae
