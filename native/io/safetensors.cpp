// Minimal safetensors loader (single file). The full reader (validation, sharding, folders) replaces this.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "io/weights.h"

namespace st2v::io {

namespace {
struct Mapping {
    void* base = nullptr;
    size_t size = 0;
    ~Mapping() { if (base && base != MAP_FAILED) munmap(base, size); }
};

// Tiny JSON scanner for the header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [a, b]}, ...}
struct Scan {
    const char* p; const char* e;
    void ws() { while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p; }
    bool eat(char c) { ws(); if (p < e && *p == c) { ++p; return true; } return false; }
    std::string str() {
        ws();
        ST2V_CHECK(p < e && *p == '"', Code::kFormat, "safetensors header: expected a string");
        ++p;
        std::string s;
        while (p < e && *p != '"') {
            if (*p == '\\' && p + 1 < e) { ++p; }
            s.push_back(*p++);
        }
        ST2V_CHECK(p < e, Code::kFormat, "safetensors header: unterminated string");
        ++p;
        return s;
    }
    int64_t num() {
        ws();
        char* end = nullptr;
        long long v = std::strtoll(p, &end, 10);
        ST2V_CHECK(end != p, Code::kFormat, "safetensors header: expected a number");
        p = end;
        return v;
    }
    void skip_value() {
        ws();
        if (p >= e) return;
        if (*p == '"') { str(); return; }
        if (*p == '{' || *p == '[') {
            int depth = 0;
            bool in_str = false;
            for (; p < e; ++p) {
                if (in_str) { if (*p == '\\') ++p; else if (*p == '"') in_str = false; continue; }
                if (*p == '"') in_str = true;
                else if (*p == '{' || *p == '[') ++depth;
                else if (*p == '}' || *p == ']') { if (--depth == 0) { ++p; return; } }
            }
            return;
        }
        while (p < e && *p != ',' && *p != '}' && *p != ']') ++p;
    }
};
}  // namespace

WeightStore load_safetensors(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY);
    ST2V_CHECK(fd >= 0, Code::kIo, "cannot open %s", path.c_str());
    struct stat st;
    fstat(fd, &st);
    auto map = std::make_shared<Mapping>();
    map->size = static_cast<size_t>(st.st_size);
    ST2V_CHECK(map->size >= 8, Code::kFormat, "%s: too small for safetensors", path.c_str());
    map->base = mmap(nullptr, map->size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    ST2V_CHECK(map->base != MAP_FAILED, Code::kIo, "cannot mmap %s", path.c_str());
    const char* base = static_cast<const char*>(map->base);
    uint64_t hlen;
    std::memcpy(&hlen, base, 8);
    ST2V_CHECK(hlen <= map->size - 8, Code::kFormat, "%s: header length %llu exceeds file", path.c_str(), (unsigned long long)hlen);
    const char* data = base + 8 + hlen;
    const size_t data_size = map->size - 8 - hlen;
    Scan s{base + 8, base + 8 + hlen};
    WeightStore ws;
    ST2V_CHECK(s.eat('{'), Code::kFormat, "%s: header is not a JSON object", path.c_str());
    if (!s.eat('}')) {
        do {
            std::string name = s.str();
            ST2V_CHECK(s.eat(':'), Code::kFormat, "%s: bad header", path.c_str());
            if (name == "__metadata__") { s.skip_value(); continue; }
            ST2V_CHECK(s.eat('{'), Code::kFormat, "%s: bad entry for %s", path.c_str(), name.c_str());
            std::string dtype;
            std::vector<int64_t> shape, offs;
            do {
                std::string key = s.str();
                ST2V_CHECK(s.eat(':'), Code::kFormat, "%s: bad entry for %s", path.c_str(), name.c_str());
                if (key == "dtype") dtype = s.str();
                else if (key == "shape" || key == "data_offsets") {
                    auto& v = key == "shape" ? shape : offs;
                    ST2V_CHECK(s.eat('['), Code::kFormat, "%s: bad %s for %s", path.c_str(), key.c_str(), name.c_str());
                    if (!s.eat(']')) { do v.push_back(s.num()); while (s.eat(',')); ST2V_CHECK(s.eat(']'), Code::kFormat, "%s: bad list", path.c_str()); }
                } else s.skip_value();
            } while (s.eat(','));
            ST2V_CHECK(s.eat('}'), Code::kFormat, "%s: bad entry for %s", path.c_str(), name.c_str());
            DType dt;
            ST2V_CHECK(dtype_from_name(dtype, &dt), Code::kFormat, "%s: tensor %s has unsupported dtype %s", path.c_str(), name.c_str(), dtype.c_str());
            ST2V_CHECK(offs.size() == 2 && offs[0] >= 0 && offs[0] <= offs[1] && static_cast<uint64_t>(offs[1]) <= data_size,
                       Code::kFormat, "%s: tensor %s has offsets outside the file", path.c_str(), name.c_str());
            Shape sh(shape);
            ST2V_CHECK(static_cast<uint64_t>(sh.numel()) * dtype_size(dt) == static_cast<uint64_t>(offs[1] - offs[0]),
                       Code::kFormat, "%s: tensor %s: shape %s x %s does not match its byte span", path.c_str(),
                       name.c_str(), sh.str().c_str(), dtype_name(dt));
            ws.add(name, Tensor::borrow(const_cast<char*>(data + offs[0]), sh, dt, map));
        } while (s.eat(','));
    }
    return ws;
}

}  // namespace st2v::io
