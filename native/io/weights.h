// WeightStore: named tensors a model binds to (canonical = official checkpoint names).
//
// Tensors are usually zero-copy views into mmap'd safetensors files (kept alive by their storage owner),
// in the dtype they were stored in (f32/f16/bf16); ops widen 2-byte weights on the fly.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace st2v::io {

class WeightStore {
  public:
    void add(const std::string& name, Tensor t);
    bool has(const std::string& name) const { return map_.count(name) != 0; }
    // Throws ERR_WEIGHTS_MISSING naming the key.
    const Tensor& get(const std::string& name) const;
    // nullptr when absent.
    const Tensor* find(const std::string& name) const;
    std::vector<std::string> names() const;
    // Names starting with prefix (e.g. "unet."), in sorted order.
    std::vector<std::string> names_with_prefix(const std::string& prefix) const;
    // A view on the entries under `prefix`, with the prefix removed ("base_model." -> "").
    WeightStore sub(const std::string& prefix) const;
    size_t size() const { return map_.size(); }
    size_t bytes() const;

  private:
    std::map<std::string, Tensor> map_;
};

// Loads one .safetensors file, a folder of them, or a sharded model (*.safetensors.index.json);
// names are kept as stored. Implemented in io/safetensors.cpp.
WeightStore load_safetensors(const std::string& path);

}  // namespace st2v::io
