#include "io/weights.h"

namespace st2v::io {

void WeightStore::add(const std::string& name, Tensor t) { map_[name] = std::move(t); }

const Tensor& WeightStore::get(const std::string& name) const {
    auto it = map_.find(name);
    ST2V_CHECK(it != map_.end(), Code::kWeightsMissing, "missing weight '%s'", name.c_str());
    return it->second;
}

const Tensor* WeightStore::find(const std::string& name) const {
    auto it = map_.find(name);
    return it == map_.end() ? nullptr : &it->second;
}

std::vector<std::string> WeightStore::names() const {
    std::vector<std::string> v;
    v.reserve(map_.size());
    for (const auto& kv : map_) v.push_back(kv.first);
    return v;
}

std::vector<std::string> WeightStore::names_with_prefix(const std::string& prefix) const {
    std::vector<std::string> v;
    for (auto it = map_.lower_bound(prefix); it != map_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
        v.push_back(it->first);
    return v;
}

WeightStore WeightStore::sub(const std::string& prefix) const {
    WeightStore s;
    for (auto it = map_.lower_bound(prefix); it != map_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
        s.map_[it->first.substr(prefix.size())] = it->second;
    return s;
}

size_t WeightStore::bytes() const {
    size_t n = 0;
    for (const auto& kv : map_) n += kv.second.nbytes();
    return n;
}

}  // namespace st2v::io
