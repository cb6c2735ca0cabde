#include "models/clip/weights_util.h"

#include <utility>
#include <vector>

#include "io/name_map.h"

namespace st2v::enc {

io::WeightStore to_canonical(const io::WeightStore& src, const std::string& naming) {
    std::vector<std::pair<std::string, Shape>> keys;
    for (const auto& n : src.names()) keys.emplace_back(n, src.get(n).shape());
    io::NameMapResult r = io::map_names(naming, keys);
    io::WeightStore out;
    for (const auto& m : r.mapped) {
        const Tensor& t = src.get(m.source);
        if (m.op == "rows") out.add(m.target, t.slice(0, m.row_begin, m.row_end));
        else if (m.op == "reshape") out.add(m.target, t.contiguous().reshape(m.shape));
        else out.add(m.target, t);
    }
    return out;
}

io::WeightStore load_canonical(const std::string& path, const std::string& naming) {
    return to_canonical(io::load_safetensors(path), naming);
}

}  // namespace st2v::enc
