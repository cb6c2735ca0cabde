#include "io/binding.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace st2v::io {

namespace {
std::string join_first(const std::vector<std::string>& v, size_t max) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < max; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > max) s += ", ... (+" + std::to_string(v.size() - max) + " more)";
    return s;
}
}  // namespace

BindResult bind_strict(const std::vector<Expected>& expected, const WeightStore& store, const BindOptions& opts) {
    const std::string ctx = opts.context.empty() ? "" : opts.context + ": ";
    std::vector<std::string> missing, mismatch, bad_dtype;
    std::set<std::string> wanted;
    BindResult r;
    for (const Expected& e : expected) {
        ST2V_CHECK(wanted.insert(e.name).second, Code::kInternal, "%sweight '%s' is expected twice", ctx.c_str(),
                   e.name.c_str());
        const Tensor* t = store.find(e.name);
        if (!t) {
            missing.push_back(e.name);
            continue;
        }
        if (t->shape() != e.shape) {
            mismatch.push_back(e.name + " (expected " + e.shape.str() + ", got " + t->shape().str() + ")");
            continue;
        }
        if (std::find(opts.allowed_dtypes.begin(), opts.allowed_dtypes.end(), t->dtype()) == opts.allowed_dtypes.end()) {
            bad_dtype.push_back(e.name + " (" + dtype_name(t->dtype()) + ")");
            continue;
        }
        r.bound.add(e.name, *t);
    }
    if (!missing.empty())
        ST2V_THROW(Code::kWeightsMissing, "%s%zu of %zu expected weights are missing: %s", ctx.c_str(), missing.size(),
                   expected.size(), join_first(missing, opts.list_max).c_str());
    if (!mismatch.empty())
        ST2V_THROW(Code::kShapeMismatch, "%s%zu weight%s with the wrong shape: %s", ctx.c_str(), mismatch.size(),
                   mismatch.size() == 1 ? "" : "s", join_first(mismatch, opts.list_max).c_str());
    if (!bad_dtype.empty()) {
        std::string allowed;
        for (DType d : opts.allowed_dtypes) allowed += std::string(allowed.empty() ? "" : "/") + dtype_name(d);
        ST2V_THROW(Code::kDtype, "%s%zu weight%s with a dtype other than %s: %s", ctx.c_str(), bad_dtype.size(),
                   bad_dtype.size() == 1 ? "" : "s", allowed.c_str(), join_first(bad_dtype, opts.list_max).c_str());
    }
    for (const std::string& n : store.names())
        if (!wanted.count(n)) r.unexpected.push_back(n);
    if (!r.unexpected.empty()) {
        r.warning = ctx + std::to_string(r.unexpected.size()) + " unexpected weight" +
                    (r.unexpected.size() == 1 ? "" : "s") + " ignored: " + join_first(r.unexpected, opts.list_max);
        if (opts.log_unexpected) std::fprintf(stderr, "st2v: warning: %s\n", r.warning.c_str());
    }
    return r;
}

}  // namespace st2v::io
