#include "bench/pipeline_bench.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/status.h"
#include "engine/default_model.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/streamingt2v/config.h"
#include "runtime/rng.h"

namespace st2v::bench {

namespace {
bool ends_with(const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// Seeded values as the embedded model draws them: norm weights 1 + 0.1 N, biases 0.05 N, token / position
// embeddings N(0, 1), matrices N(0, 1 / fan_in).
void add_encoder_weights(io::WeightStore& w, const engine::TinyConfig& c, uint64_t seed, DType dt) {
    runtime::TorchGenerator gen(seed);
    for (auto& kv : engine::tiny_encoder_keys(c)) {
        const std::string& name = kv.first;
        const Shape& s = kv.second;
        Tensor t = gen.randn(s);
        float* p = t.f32();
        const int64_t n = t.numel();
        const bool norm = name.find("norm") != std::string::npos || name.find("ln_") != std::string::npos;
        if (name.find("token_embedding") != std::string::npos || name.find("position_embedding") != std::string::npos ||
            name.find("positional_embedding") != std::string::npos || name.find("class_embedding") != std::string::npos) {
            // N(0, 1) as drawn
        } else if (s.ndim() == 1) {
            const float a = norm && ends_with(name, ".weight") ? 1.f : 0.f, b = norm && ends_with(name, ".weight") ? 0.1f : 0.05f;
            for (int64_t i = 0; i < n; ++i) p[i] = a + b * p[i];
        } else {
            int64_t fan_in = n / s[0];
            if (ends_with(name, "visual.proj")) fan_in = s[0];  // stored [width, embed]: x @ proj
            const float sc = 1.f / std::sqrt(static_cast<float>(std::max<int64_t>(1, fan_in)));
            for (int64_t i = 0; i < n; ++i) p[i] *= sc;
        }
        w.add(name, dt == DType::F32 ? t : t.to(dt));
    }
}
}  // namespace

RandomModelInfo write_random_model(const std::string& dir, const RandomModelSpec& s) {
    namespace fs = std::filesystem;
    ST2V_CHECK_ARG(s.preset == "tiny" || s.preset == "mid", "random model: preset must be 'tiny' or 'mid', got '%s'",
                   s.preset.c_str());
    ST2V_CHECK_ARG(s.dtype == DType::F32 || s.dtype == DType::F16 || s.dtype == DType::BF16,
                   "random model: dtype must be f32, f16 or bf16");
    ST2V_CHECK_ARG(s.vocab >= 514 && s.vocab <= 1000000, "random model: vocab must be in [514, 1000000]");
    const auto t0 = std::chrono::steady_clock::now();
    RandomModelInfo info;
    io::WeightStore w;
    if (s.preset == "tiny") {
        engine::TinyConfig c;
        c.vocab_size = s.vocab;
        c.seed = s.seed;
        io::WeightStore f = engine::make_tiny_weights(c);
        for (const std::string& n : f.names()) w.add(n, s.dtype == DType::F32 ? f.get(n) : f.get(n).to(s.dtype));
        info.config = "tiny (the embedded default's architecture: UNet 64/128, context 64, text 2 layers, vocab " +
                      std::to_string(s.vocab) + ")";
    } else {
        const t2v::St2vConfig c = t2v::St2vConfig::mid();
        w = t2v::make_random_weights(c, s.seed, s.dtype);
        engine::TinyConfig e;
        e.context_dim = c.unet.context_dim;  // 1024
        e.vocab_size = s.vocab;
        e.text_layers = 4;
        e.vision_width = 512;
        e.vision_layers = 4;
        e.image_dim = c.image_embed_dim;  // 1024, the resampler's input
        e.vae_channels = 128;
        add_encoder_weights(w, e, s.seed + 1, s.dtype);
        info.config = "mid: " + c.str() + "; text encoder 1024 x 4 layers (vocab " + std::to_string(s.vocab) +
                      "), image tower 512 x 4 layers -> 1024, VAE 128 channels";
    }
    for (const std::string& n : w.names()) info.params += static_cast<double>(w.get(n).numel());
    fs::create_directories(dir);
    if (s.base) {
        // The plain stage-1 UNet3D of the same widths and context as the extension UNet.
        t2v::St2vConfig b;
        if (s.preset == "tiny") {
            const engine::TinyConfig tc;
            b = t2v::St2vConfig::tiny();
            b.unet.context_dim = tc.context_dim;
            b.unet.time_embed_dim = 4 * tc.channels[0];
        } else {
            b = t2v::St2vConfig::mid();
        }
        b.unet.apm = b.unet.cam_mergers = false;
        b.cam = b.resampler = false;
        io::WeightStore bw = t2v::make_random_weights(b, s.seed + 2, s.dtype);
        fs::create_directories(fs::path(dir) / "base");
        io::save_safetensors((fs::path(dir) / "base" / "unet.safetensors").string(), bw,
                             {{"format", "pt"}, {"producer", "st2v random model (stage-1 base)"}});
        for (const std::string& n : bw.names()) info.params += static_cast<double>(bw.get(n).numel());
        info.config += "; stage-1 base UNet3D " + b.unet.str();
    }
    const std::string file = (fs::path(dir) / "model.safetensors").string();
    io::save_safetensors(file, w, {{"format", "pt"}, {"producer", "st2v random model (" + s.preset + ")"}});
    info.bytes = static_cast<double>(fs::file_size(file));
    const char* dts = s.dtype == DType::F32 ? "f32" : s.dtype == DType::F16 ? "f16" : "bf16";
    std::ofstream mj((fs::path(dir) / "model.json").string(), std::ios::trunc);
    mj << "{\n  \"format\": \"st2v-model\",\n  \"version\": 1,\n  \"dtype\": \"" << dts << "\",\n"
       << "  \"untrained\": " << (s.untrained ? "true" : "false") << ",\n"
       << "  \"description\": " << io::json_quote("random weights (seed " + std::to_string(s.seed) + "): " + info.config) << ",\n"
       << "  \"preset\": " << io::json_quote(s.preset) << ",\n  \"seed\": " << s.seed << ",\n"
       << "  \"files\": [\"model.safetensors\"],\n  \"createdBy\": \"st2v random model\"\n}\n";
    ST2V_CHECK(mj.good(), Code::kIo, "random model: cannot write %s/model.json", dir.c_str());
    info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return info;
}

}  // namespace st2v::bench
