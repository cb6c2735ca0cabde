#include "io/npy.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace st2v::io {

namespace {
struct FileCloser { void operator()(FILE* f) const { if (f) std::fclose(f); } };
using File = std::unique_ptr<FILE, FileCloser>;

std::string dict_value(const std::string& h, const std::string& key) {
    size_t k = h.find("'" + key + "'");
    if (k == std::string::npos) return {};
    size_t c = h.find(':', k);
    if (c == std::string::npos) return {};
    size_t s = c + 1;
    while (s < h.size() && h[s] == ' ') ++s;
    if (s >= h.size()) return {};
    if (h[s] == '\'') {
        size_t e = h.find('\'', s + 1);
        return e == std::string::npos ? std::string() : h.substr(s + 1, e - s - 1);
    }
    if (h[s] == '(') {
        size_t e = h.find(')', s);
        return e == std::string::npos ? std::string() : h.substr(s, e - s + 1);
    }
    size_t e = h.find_first_of(",}", s);
    return h.substr(s, e - s);
}
}  // namespace

Tensor read_npy(const std::string& path) {
    File f(std::fopen(path.c_str(), "rb"));
    ST2V_CHECK(f != nullptr, Code::kIo, "cannot open %s", path.c_str());
    unsigned char magic[8];
    ST2V_CHECK(std::fread(magic, 1, 8, f.get()) == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0, Code::kFormat,
               "%s: not a .npy file", path.c_str());
    uint32_t hlen = 0;
    if (magic[6] == 1) {
        unsigned char b[2];
        ST2V_CHECK(std::fread(b, 1, 2, f.get()) == 2, Code::kFormat, "%s: truncated header", path.c_str());
        hlen = b[0] | (b[1] << 8);
    } else {
        unsigned char b[4];
        ST2V_CHECK(std::fread(b, 1, 4, f.get()) == 4, Code::kFormat, "%s: truncated header", path.c_str());
        hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
    }
    ST2V_CHECK(hlen < (1u << 20), Code::kFormat, "%s: header too long", path.c_str());
    std::string h(hlen, '\0');
    ST2V_CHECK(std::fread(h.data(), 1, hlen, f.get()) == hlen, Code::kFormat, "%s: truncated header", path.c_str());
    std::string descr = dict_value(h, "descr");
    std::string fortran = dict_value(h, "fortran_order");
    std::string shape = dict_value(h, "shape");
    ST2V_CHECK(fortran.find("False") != std::string::npos, Code::kFormat, "%s: Fortran order not supported", path.c_str());
    DType dt;
    if (descr == "<f4") dt = DType::F32;
    else if (descr == "<f2") dt = DType::F16;
    else if (descr == "<f8") dt = DType::F64;
    else if (descr == "<i8") dt = DType::I64;
    else if (descr == "<i4") dt = DType::I32;
    else if (descr == "<u4") dt = DType::I32;  // same bits; callers reinterpret
    else if (descr == "|u1") dt = DType::U8;
    else if (descr == "|b1") dt = DType::Bool;
    else if (descr == "|i1") dt = DType::I8;
    else ST2V_THROW(Code::kFormat, "%s: unsupported dtype %s", path.c_str(), descr.c_str());
    std::vector<int64_t> dims;
    ST2V_CHECK(shape.size() >= 2, Code::kFormat, "%s: bad shape", path.c_str());
    std::string inner = shape.substr(1, shape.size() - 2);
    size_t pos = 0;
    while (pos < inner.size()) {
        size_t e = inner.find(',', pos);
        std::string tok = inner.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
        size_t a = tok.find_first_not_of(' ');
        if (a != std::string::npos) dims.push_back(std::stoll(tok.substr(a)));
        if (e == std::string::npos) break;
        pos = e + 1;
    }
    Tensor t = Tensor::empty(Shape(dims), dt);
    size_t n = t.nbytes();
    ST2V_CHECK(std::fread(t.raw(), 1, n, f.get()) == n, Code::kFormat, "%s: truncated data", path.c_str());
    return t;
}

void write_npy(const std::string& path, const Tensor& t0) {
    Tensor t = t0.contiguous();
    const char* descr = nullptr;
    switch (t.dtype()) {
        case DType::F32: descr = "<f4"; break;
        case DType::F16: descr = "<f2"; break;
        case DType::F64: descr = "<f8"; break;
        case DType::I64: descr = "<i8"; break;
        case DType::I32: descr = "<i4"; break;
        case DType::U8: descr = "|u1"; break;
        case DType::Bool: descr = "|b1"; break;
        case DType::I8: descr = "|i1"; break;
        default: ST2V_THROW(Code::kDtype, "write_npy: dtype %s not supported", dtype_name(t.dtype()));
    }
    std::string shape = "(";
    for (int i = 0; i < t.ndim(); ++i) shape += std::to_string(t.size(i)) + (t.ndim() == 1 || i + 1 < t.ndim() ? ", " : "");
    if (t.ndim() > 1) shape = shape.substr(0, shape.size());
    shape += ")";
    std::string h = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    size_t total = 10 + h.size() + 1;
    h.append((64 - total % 64) % 64, ' ');
    h.push_back('\n');
    File f(std::fopen(path.c_str(), "wb"));
    ST2V_CHECK(f != nullptr, Code::kIo, "cannot write %s", path.c_str());
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(h.size() & 0xff),
                             static_cast<unsigned char>(h.size() >> 8)};
    std::fwrite(pre, 1, 10, f.get());
    std::fwrite(h.data(), 1, h.size(), f.get());
    ST2V_CHECK(std::fwrite(t.raw(), 1, t.nbytes(), f.get()) == t.nbytes(), Code::kIo, "write failed: %s", path.c_str());
}

}  // namespace st2v::io
