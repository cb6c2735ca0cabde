#include "models/common/verify_registry.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "core/status.h"
#include "io/npy.h"

namespace st2v::verify {

namespace {
struct Group {
    std::string name;
    CaseFn fn;
    int order;
};
std::mutex& reg_mutex() {
    static std::mutex m;
    return m;
}
std::vector<Group>& groups() {
    static std::vector<Group> g;
    return g;
}
}  // namespace

void register_verify_case(const std::string& name_prefix, CaseFn fn, int order) {
    std::lock_guard<std::mutex> lock(reg_mutex());
    groups().push_back({name_prefix, std::move(fn), order});
}

std::vector<std::string> registered_groups() {
    std::lock_guard<std::mutex> lock(reg_mutex());
    std::vector<Group> g = groups();
    std::stable_sort(g.begin(), g.end(), [](const Group& a, const Group& b) { return a.order != b.order ? a.order < b.order : a.name < b.name; });
    std::vector<std::string> names;
    for (const Group& x : g) names.push_back(x.name);
    return names;
}

CaseResult compare(const std::string& name, const Tensor& out, const Tensor& ref, double rel_tol) {
    CaseResult r;
    r.name = name;
    r.shape = ref.shape().vec();
    if (!out.defined()) {
        r.note = "no output";
        return r;
    }
    if (out.numel() != ref.numel()) {
        r.note = "shape " + out.desc() + " vs reference " + ref.desc();
        return r;
    }
    Tensor a = out.to(DType::F32), b = ref.to(DType::F32);
    const float* x = a.f32();
    const float* y = b.f32();
    bool ok = true;
    for (int64_t i = 0; i < a.numel(); ++i) {
        const double d = std::fabs(double(x[i]) - double(y[i]));
        const double m = std::fabs(double(y[i]));
        if (!(d <= rel_tol * std::max(1.0, m))) ok = false;  // NaN fails
        if (!(d <= r.max_abs)) r.max_abs = std::isnan(d) ? NAN : std::max(r.max_abs, d);
        const double rel = d / std::max(1.0, m);
        if (!(rel <= r.max_rel)) r.max_rel = std::isnan(rel) ? NAN : std::max(r.max_rel, rel);
        r.max_ref = std::max(r.max_ref, m);
    }
    r.rel_tol = rel_tol;
    r.tol = rel_tol * std::max(1.0, r.max_ref);
    r.pass = ok;
    if (!ok) {
        std::ostringstream s;
        s << "exceeds " << rel_tol << " * max(1, |ref|)";
        r.note = s.str();
    }
    return r;
}

Dump::Dump(std::string dir) : dir_(std::move(dir)) {
    const std::string mp = dir_ + "/manifest.json";
    std::ifstream f(mp, std::ios::binary);
    ST2V_CHECK(f.good(), Code::kNotFound, "verify: '%s' is not a reference dump (no manifest.json)", dir_.c_str());
    std::stringstream ss;
    ss << f.rdbuf();
    manifest_ = io::Json::parse(ss.str());
    ST2V_CHECK(manifest_.is_object(), Code::kFormat, "verify: %s is not a JSON object", mp.c_str());
}

bool Dump::has(const std::string& rel) const { return std::filesystem::is_regular_file(dir_ + "/" + rel); }

const Tensor& Dump::npy(const std::string& rel) {
    auto it = files_.find(rel);
    if (it != files_.end()) return it->second;
    ST2V_CHECK(has(rel), Code::kNotFound, "verify: the dump has no file '%s'", rel.c_str());
    return files_.emplace(rel, io::read_npy(dir_ + "/" + rel)).first->second;
}

bool Dump::has_scalar(const std::string& key) const {
    const io::Json* s = manifest_.find("scalars");
    const io::Json* v = s ? s->find(key) : nullptr;
    return v && v->is_number();
}

double Dump::scalar(const std::string& key, double def) const {
    const io::Json* s = manifest_.find("scalars");
    const io::Json* v = s ? s->find(key) : nullptr;
    return v && v->is_number() ? v->as_double() : def;
}

namespace {
std::string weights_file(const io::Json& m) {
    const io::Json* w = m.find("weights");
    const io::Json* f = w ? w->find("file") : nullptr;
    return f && f->is_string() ? f->as_string() : std::string("weights.safetensors");
}
}  // namespace

bool Dump::has_weights() const { return has(weights_file(manifest_)); }

const io::WeightStore& Dump::weights() {
    if (!weights_) {
        const std::string f = weights_file(manifest_);
        ST2V_CHECK(has(f), Code::kNotFound, "verify: the dump has no weights file '%s'", f.c_str());
        weights_ = std::make_unique<io::WeightStore>(io::load_safetensors(dir_ + "/" + f));
    }
    return *weights_;
}

std::vector<CaseResult> run_verify(const std::string& dir, const std::function<void(const std::string&)>& progress) {
    Dump d(dir);
    std::vector<Group> g;
    {
        std::lock_guard<std::mutex> lock(reg_mutex());
        g = groups();
    }
    std::stable_sort(g.begin(), g.end(), [](const Group& a, const Group& b) { return a.order != b.order ? a.order < b.order : a.name < b.name; });
    std::vector<CaseResult> out;
    for (const Group& x : g) {
        if (progress) progress(x.name);
        try {
            x.fn(d, out);
        } catch (const Error& e) {
            CaseResult r;
            r.name = x.name;
            r.note = e.what();
            out.push_back(r);
        } catch (const std::exception& e) {
            CaseResult r;
            r.name = x.name;
            r.note = std::string("internal error: ") + e.what();
            out.push_back(r);
        }
    }
    return out;
}

}  // namespace st2v::verify
