// Loading helper shared by the encoder models: a checkpoint file in any supported naming -> a WeightStore
// under the canonical names of io/name_map.h (the name map is the only place that knows the aliases).
#pragma once
#include <string>

#include "io/weights.h"

namespace st2v::enc {

// Loads `path` (safetensors file/folder) and maps every key through io::map_names(naming) ("" = detect).
// "rows"/"reshape" mappings are materialised as views (rows) or reshaped contiguous tensors.
io::WeightStore load_canonical(const std::string& path, const std::string& naming = "");
// Same for an already loaded store.
io::WeightStore to_canonical(const io::WeightStore& src, const std::string& naming = "");

}  // namespace st2v::enc
