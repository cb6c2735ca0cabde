// `st2v verify`: run a reference dump (the golden/st2v format: manifest.json + .npy files + weights) through
// the engine and compare every output it holds.
//
// A case group registers itself from any .cpp in the core library, without editing this file:
//
//   static const st2v::verify::Registrar reg("ddim", [](st2v::verify::Dump& d, std::vector<CaseResult>& out) {
//       if (!d.has("ddim/x_T.npy")) return;              // the dump has no such data: add nothing
//       out.push_back(st2v::verify::compare("ddim_x0", mine, d.npy("ddim/latents_final.npy")));
//   }, /*order=*/200);
//
// Groups run in (order, name) order; the model cases (img_tokens ... eps_cfg) use order 100. A group that
// throws st2v::Error becomes one failed case named after the group, with the message as its note, and the
// others still run. Shapes, frame counts, token counts etc. must be read from the dump, never assumed.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/json.h"
#include "io/weights.h"

namespace st2v::verify {

struct CaseResult {
    std::string name;
    double max_abs = 0;          // max |out - ref|
    double max_ref = 0;          // max |ref|
    double max_rel = 0;          // max |out - ref| / max(1, |ref|): pass <=> max_rel <= rel_tol
    double rel_tol = 1e-4;       // the case's relative tolerance (1e-4 unless the case documents otherwise)
    double tol = 0;              // rel_tol * max(1, max|ref|) (reported); pass is the per-element test below
    bool pass = false;           // every element: |out - ref| <= rel_tol * max(1, |ref|), shapes equal, finite
    std::vector<int64_t> shape;  // of the reference
    std::string note;            // why it failed (shape mismatch, error message), "" otherwise
};

// Compares out against ref element-wise (any dtype; both read as f32). Shapes must have equal numel and dims.
CaseResult compare(const std::string& name, const Tensor& out, const Tensor& ref, double rel_tol = 1e-4);

// A reference dump on disk. Files are read lazily and cached; the weights are loaded once.
class Dump {
  public:
    explicit Dump(std::string dir);  // throws ERR_NOT_FOUND when dir/manifest.json is absent
    const std::string& dir() const { return dir_; }
    const io::Json& manifest() const { return manifest_; }
    bool has(const std::string& rel) const;          // e.g. "step/x_t.npy"
    const Tensor& npy(const std::string& rel);       // throws ERR_NOT_FOUND naming the file
    // manifest.scalars[key] (number), or def.
    double scalar(const std::string& key, double def) const;
    bool has_scalar(const std::string& key) const;
    // manifest.weights.file (default weights.safetensors) under dir.
    bool has_weights() const;
    const io::WeightStore& weights();
    // Results one group computes and another reuses. The "step" group (order 100) leaves "step/eps" (the
    // CFG-batch UNet output [B, 4, F, h, w]) and "step/eps_cfg" ([b, 4, F, h, w], guidance from
    // scalars step.guidance_scale) here for later groups (e.g. the DDIM x_prev case, order > 100).
    std::map<std::string, Tensor>& cache() { return cache_; }

  private:
    std::string dir_;
    io::Json manifest_;
    std::map<std::string, Tensor> files_;
    std::map<std::string, Tensor> cache_;
    std::unique_ptr<io::WeightStore> weights_;
};

using CaseFn = std::function<void(Dump&, std::vector<CaseResult>&)>;

void register_verify_case(const std::string& name_prefix, CaseFn fn, int order = 100);
struct Registrar {
    Registrar(const std::string& name_prefix, CaseFn fn, int order = 100) { register_verify_case(name_prefix, std::move(fn), order); }
};
std::vector<std::string> registered_groups();

// Runs every registered group on the dump at dir. progress(group) is called before each group (may be empty).
std::vector<CaseResult> run_verify(const std::string& dir, const std::function<void(const std::string&)>& progress = {});

}  // namespace st2v::verify
