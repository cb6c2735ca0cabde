// Strict weight binding: a model states every tensor it needs (name + shape); bind_strict checks a WeightStore
// against that list before any compute runs.
//
//   std::vector<io::Expected> want = {{"conv_in.weight", {320, 4, 3, 3}}, ...};
//   io::BindResult r = io::bind_strict(want, store.sub("base_model."));
//   const Tensor& w = r.get("conv_in.weight");
//
// - any expected name absent  -> ERR_WEIGHTS_MISSING: "<n> of <m> expected weights are missing: a, b, ... (+k more)"
// - any shape differs         -> ERR_SHAPE_MISMATCH naming each key (first few) with expected and actual shape
// - dtype not allowed         -> ERR_DTYPE naming the key and its dtype
// - names present but not expected -> not an error: listed in BindResult::unexpected and reported as ONE
//   warning line (stderr unless BindOptions::log_unexpected is false).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weights.h"

namespace st2v::io {

struct Expected {
    std::string name;
    Shape shape;
};

struct BindOptions {
    std::vector<DType> allowed_dtypes{DType::F32, DType::F16, DType::BF16};
    size_t list_max = 10;          // names quoted in an error / warning before "(+k more)"
    bool log_unexpected = true;    // print the one-line warning to stderr
    std::string context;           // e.g. "unet" (prefixes messages)
};

struct BindResult {
    WeightStore bound;                     // exactly the expected tensors
    std::vector<std::string> unexpected;   // store names no one asked for (sorted)
    std::string warning;                   // the one-line warning ("" when none)
    const Tensor& get(const std::string& name) const { return bound.get(name); }
};

BindResult bind_strict(const std::vector<Expected>& expected, const WeightStore& store, const BindOptions& opts = {});

}  // namespace st2v::io
