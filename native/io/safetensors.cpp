// safetensors reader (validated, mmap'd, zero-copy), sharded models and folders, and a streaming writer.
#include "io/safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "io/json.h"

namespace st2v::io {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit (100 MB)

struct Mapping {
    void* base = nullptr;
    size_t size = 0;
    ~Mapping() {
        if (base && base != MAP_FAILED) munmap(base, size);
    }
};

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

void open_file(const std::string& path, Fd& fd, uint64_t& size) {
    fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd.fd < 0) {
        int err = errno;
        ST2V_CHECK(err != ENOENT, Code::kNotFound, "%s: no such file", path.c_str());
        ST2V_THROW(Code::kIo, "%s: cannot open (%s)", path.c_str(), std::strerror(err));
    }
    struct stat st;
    ST2V_CHECK(::fstat(fd.fd, &st) == 0, Code::kIo, "%s: cannot stat (%s)", path.c_str(), std::strerror(errno));
    ST2V_CHECK(S_ISREG(st.st_mode), Code::kIo, "%s: not a regular file", path.c_str());
    size = static_cast<uint64_t>(st.st_size);
}

void pread_all(int fd, void* dst, size_t n, uint64_t off, const std::string& path) {
    char* d = static_cast<char*>(dst);
    while (n > 0) {
        ssize_t r = ::pread(fd, d, n, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        ST2V_CHECK(r > 0, Code::kIo, "%s: read failed at offset %llu", path.c_str(), (unsigned long long)off);
        d += r;
        n -= static_cast<size_t>(r);
        off += static_cast<uint64_t>(r);
    }
}

// Parses and validates a header given its JSON bytes.
SafetensorsHeader parse_header(const std::string& path, const char* json, uint64_t hlen, uint64_t file_size) {
    SafetensorsHeader h;
    h.data_start = 8 + hlen;
    h.file_size = file_size;
    const uint64_t data_size = file_size - h.data_start;
    Json root;
    try {
        root = Json::parse(json, static_cast<size_t>(hlen));
    } catch (const Error& e) {
        ST2V_THROW(Code::kFormat, "%s: safetensors header: %s", path.c_str(), e.what());
    }
    ST2V_CHECK(root.is_object(), Code::kFormat, "%s: safetensors header is a JSON %s, not an object", path.c_str(),
               root.type_name());
    std::set<std::string> seen;
    for (const auto& kv : root.members()) {
        const std::string& name = kv.first;
        const Json& v = kv.second;
        ST2V_CHECK(seen.insert(name).second, Code::kFormat, "%s: tensor '%s' appears twice in the header", path.c_str(),
                   name.c_str());
        if (name == "__metadata__") {
            ST2V_CHECK(v.is_object(), Code::kFormat, "%s: __metadata__ must be an object", path.c_str());
            for (const auto& m : v.members()) {
                ST2V_CHECK(m.second.is_string(), Code::kFormat, "%s: __metadata__ value '%s' must be a string",
                           path.c_str(), m.first.c_str());
                h.metadata[m.first] = m.second.as_string();
            }
            continue;
        }
        const char* f = path.c_str();
        const char* n = name.c_str();
        ST2V_CHECK(v.is_object(), Code::kFormat, "%s: tensor '%s': entry must be an object", f, n);
        const Json* dt = v.find("dtype");
        const Json* sh = v.find("shape");
        const Json* of = v.find("data_offsets");
        ST2V_CHECK(dt && dt->is_string(), Code::kFormat, "%s: tensor '%s': missing or non-string dtype", f, n);
        ST2V_CHECK(sh && sh->is_array(), Code::kFormat, "%s: tensor '%s': missing or non-array shape", f, n);
        ST2V_CHECK(of && of->is_array() && of->items().size() == 2, Code::kFormat,
                   "%s: tensor '%s': data_offsets must be an array of two integers", f, n);
        SafetensorsEntry en;
        en.name = name;
        const std::string& ds = dt->as_string();
        static const struct { const char* s; DType t; } kTypes[] = {
            {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
            {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16},   {"I8", DType::I8},
            {"U8", DType::U8},   {"BOOL", DType::Bool}};
        bool ok = false;
        for (const auto& t : kTypes)
            if (ds == t.s) { en.dtype = t.t; ok = true; }
        ST2V_CHECK(ok, Code::kFormat, "%s: tensor '%s': unsupported dtype '%s'", f, n, ds.c_str());
        ST2V_CHECK(sh->items().size() <= static_cast<size_t>(kMaxDims), Code::kFormat,
                   "%s: tensor '%s': rank %zu exceeds %d", f, n, sh->items().size(), kMaxDims);
        std::vector<int64_t> dims;
        uint64_t numel = 1;
        bool overflow = false;
        for (const Json& d : sh->items()) {
            ST2V_CHECK(d.is_integer() && d.as_int() >= 0, Code::kFormat,
                       "%s: tensor '%s': shape entries must be non-negative integers", f, n);
            uint64_t x = static_cast<uint64_t>(d.as_int());
            if (x != 0 && numel > (~0ull) / x) overflow = true;
            numel *= x;
            dims.push_back(d.as_int());
        }
        ST2V_CHECK(!overflow, Code::kFormat, "%s: tensor '%s': shape overflows", f, n);
        en.shape = Shape(dims);
        const Json& a = of->items()[0];
        const Json& b = of->items()[1];
        ST2V_CHECK(a.is_integer() && b.is_integer() && a.as_int() >= 0 && b.as_int() >= a.as_int(), Code::kFormat,
                   "%s: tensor '%s': data_offsets must be integers with 0 <= begin <= end", f, n);
        en.begin = static_cast<uint64_t>(a.as_int());
        en.end = static_cast<uint64_t>(b.as_int());
        ST2V_CHECK(en.end <= data_size, Code::kFormat,
                   "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the data area (%llu bytes)", f, n,
                   (unsigned long long)en.begin, (unsigned long long)en.end, (unsigned long long)data_size);
        const uint64_t esz = dtype_size(en.dtype);
        ST2V_CHECK(numel <= (~0ull) / esz && numel * esz == en.end - en.begin, Code::kFormat,
                   "%s: tensor '%s': shape %s x %s (%llu bytes) does not match its data_offsets span (%llu bytes)", f,
                   n, en.shape.str().c_str(), ds.c_str(), (unsigned long long)(numel * esz),
                   (unsigned long long)(en.end - en.begin));
        h.entries.push_back(std::move(en));
    }
    std::sort(h.entries.begin(), h.entries.end(), [](const SafetensorsEntry& x, const SafetensorsEntry& y) {
        return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
    });
    for (size_t i = 1; i < h.entries.size(); ++i) {
        const auto& p = h.entries[i - 1];
        const auto& c = h.entries[i];
        // Empty tensors occupy no bytes and may share an offset with anything.
        if (c.begin == c.end || p.begin == p.end) continue;
        ST2V_CHECK(c.begin >= p.end, Code::kFormat, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                   path.c_str(), p.name.c_str(), (unsigned long long)p.begin, (unsigned long long)p.end,
                   c.name.c_str(), (unsigned long long)c.begin, (unsigned long long)c.end);
    }
    return h;
}

uint64_t check_header_len(const std::string& path, const unsigned char* b8, uint64_t file_size) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | b8[i];
    ST2V_CHECK(hlen <= kMaxHeader, Code::kFormat, "%s: safetensors header length %llu is larger than the 100 MB limit",
               path.c_str(), (unsigned long long)hlen);
    ST2V_CHECK(hlen <= file_size - 8, Code::kFormat, "%s: safetensors header length %llu exceeds the file (%llu bytes)",
               path.c_str(), (unsigned long long)hlen, (unsigned long long)file_size);
    ST2V_CHECK(hlen >= 2, Code::kFormat, "%s: safetensors header length %llu is too small", path.c_str(),
               (unsigned long long)hlen);
    return hlen;
}

bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

bool is_dir(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string dirname_of(const std::string& p) {
    size_t k = p.find_last_of('/');
    return k == std::string::npos ? "." : (k == 0 ? "/" : p.substr(0, k));
}

std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> v;
    DIR* d = ::opendir(dir.c_str());
    ST2V_CHECK(d != nullptr, Code::kIo, "%s: cannot list folder (%s)", dir.c_str(), std::strerror(errno));
    while (dirent* e = ::readdir(d)) v.emplace_back(e->d_name);
    ::closedir(d);
    std::sort(v.begin(), v.end());
    return v;
}

std::string read_small_file(const std::string& path) {
    Fd fd;
    uint64_t size = 0;
    open_file(path, fd, size);
    ST2V_CHECK(size <= kMaxHeader, Code::kFormat, "%s: too large for an index file", path.c_str());
    std::string s(static_cast<size_t>(size), '\0');
    if (size) pread_all(fd.fd, s.data(), s.size(), 0, path);
    return s;
}

void merge_into(WeightStore& dst, const WeightStore& src, const std::string& file) {
    for (const std::string& n : src.names()) {
        ST2V_CHECK(!dst.has(n), Code::kFormat, "%s: tensor '%s' is also defined in another file", file.c_str(), n.c_str());
        dst.add(n, src.get(n));
    }
}

WeightStore load_sharded(const std::string& index_path) {
    std::string text = read_small_file(index_path);
    Json root;
    try {
        root = Json::parse(text);
    } catch (const Error& e) {
        ST2V_THROW(Code::kFormat, "%s: %s", index_path.c_str(), e.what());
    }
    const Json* wm = root.find("weight_map");
    ST2V_CHECK(wm && wm->is_object(), Code::kFormat, "%s: no \"weight_map\" object", index_path.c_str());
    std::map<std::string, std::vector<std::string>> by_file;
    for (const auto& kv : wm->members()) {
        ST2V_CHECK(kv.second.is_string(), Code::kFormat, "%s: weight_map['%s'] must be a file name", index_path.c_str(),
                   kv.first.c_str());
        const std::string& fn = kv.second.as_string();
        ST2V_CHECK(!fn.empty() && fn[0] != '/' && fn.find("..") == std::string::npos, Code::kFormat,
                   "%s: weight_map['%s'] names an unsafe path '%s'", index_path.c_str(), kv.first.c_str(), fn.c_str());
        by_file[fn].push_back(kv.first);
    }
    const std::string dir = dirname_of(index_path);
    WeightStore all;
    for (const auto& kv : by_file) {
        const std::string shard = dir + "/" + kv.first;
        WeightStore ws = load_safetensors_file(shard);
        for (const std::string& n : kv.second)
            ST2V_CHECK(ws.has(n), Code::kFormat, "%s: tensor '%s' listed in %s is not in the shard", shard.c_str(),
                       n.c_str(), index_path.c_str());
        merge_into(all, ws, shard);
    }
    return all;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::F64: return "F64";
        case DType::I64: return "I64";
        case DType::I32: return "I32";
        case DType::I16: return "I16";
        case DType::I8: return "I8";
        case DType::U8: return "U8";
        case DType::Bool: return "BOOL";
    }
    return "?";
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
    Fd fd;
    uint64_t size = 0;
    open_file(path, fd, size);
    ST2V_CHECK(size >= 8, Code::kFormat, "%s: %llu bytes is too small for a safetensors file", path.c_str(),
               (unsigned long long)size);
    unsigned char b8[8];
    pread_all(fd.fd, b8, 8, 0, path);
    uint64_t hlen = check_header_len(path, b8, size);
    std::string json(static_cast<size_t>(hlen), '\0');
    pread_all(fd.fd, json.data(), json.size(), 8, path);
    return parse_header(path, json.data(), hlen, size);
}

WeightStore load_safetensors_file(const std::string& path) {
    Fd fd;
    uint64_t size = 0;
    open_file(path, fd, size);
    ST2V_CHECK(size >= 8, Code::kFormat, "%s: %llu bytes is too small for a safetensors file", path.c_str(),
               (unsigned long long)size);
    auto map = std::make_shared<Mapping>();
    map->size = static_cast<size_t>(size);
    map->base = ::mmap(nullptr, map->size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
    ST2V_CHECK(map->base != MAP_FAILED, Code::kIo, "%s: cannot mmap (%s)", path.c_str(), std::strerror(errno));
    const char* base = static_cast<const char*>(map->base);
    uint64_t hlen = check_header_len(path, reinterpret_cast<const unsigned char*>(base), size);
    SafetensorsHeader h = parse_header(path, base + 8, hlen, size);
    char* data = const_cast<char*>(base) + h.data_start;
    WeightStore ws;
    for (const auto& e : h.entries) ws.add(e.name, Tensor::borrow(data + e.begin, e.shape, e.dtype, map));
    return ws;
}

WeightStore load_safetensors(const std::string& path) {
    if (is_dir(path)) {
        std::vector<std::string> names = list_dir(path);
        std::vector<std::string> idx, files;
        for (const auto& n : names) {
            if (ends_with(n, ".safetensors.index.json")) idx.push_back(n);
            else if (ends_with(n, ".safetensors")) files.push_back(n);
        }
        ST2V_CHECK(idx.size() <= 1, Code::kFormat, "%s: more than one *.safetensors.index.json in the folder",
                   path.c_str());
        if (idx.size() == 1) return load_sharded(path + "/" + idx[0]);
        ST2V_CHECK(!files.empty(), Code::kNotFound, "%s: no .safetensors files in the folder", path.c_str());
        WeightStore all;
        for (const auto& f : files) {
            std::string p = path + "/" + f;
            merge_into(all, load_safetensors_file(p), p);
        }
        return all;
    }
    if (ends_with(path, ".index.json")) return load_sharded(path);
    return load_safetensors_file(path);
}

// ---- writer ----

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<Decl>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), decls_(tensors) {
    std::set<std::string> seen;
    std::string h = "{";
    bool first = true;
    if (!metadata.empty()) {
        h += "\"__metadata__\":{";
        bool f2 = true;
        for (const auto& kv : metadata) {
            if (!f2) h += ",";
            f2 = false;
            h += json_quote(kv.first) + ":" + json_quote(kv.second);
        }
        h += "}";
        first = false;
    }
    uint64_t off = 0;
    for (const auto& d : decls_) {
        ST2V_CHECK_ARG(!d.name.empty() && d.name != "__metadata__", "safetensors writer: bad tensor name '%s'",
                       d.name.c_str());
        ST2V_CHECK_ARG(seen.insert(d.name).second, "safetensors writer: tensor '%s' declared twice", d.name.c_str());
        uint64_t bytes = static_cast<uint64_t>(d.shape.numel()) * dtype_size(d.dtype);
        sizes_.push_back(bytes);
        if (!first) h += ",";
        first = false;
        h += json_quote(d.name) + ":{\"dtype\":\"" + safetensors_dtype_name(d.dtype) + "\",\"shape\":[";
        for (int i = 0; i < d.shape.ndim(); ++i) h += (i ? "," : "") + std::to_string(d.shape[i]);
        h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + bytes) + "]}";
        off += bytes;
    }
    h += "}";
    while ((8 + h.size()) % 8 != 0) h.push_back(' ');
    f_ = std::fopen(path.c_str(), "wb");
    ST2V_CHECK(f_ != nullptr, Code::kIo, "%s: cannot create (%s)", path.c_str(), std::strerror(errno));
    unsigned char b8[8];
    uint64_t n = h.size();
    data_start_ = 8 + n;
    for (int i = 0; i < 8; ++i) b8[i] = static_cast<unsigned char>(n >> (8 * i));
    bool ok = std::fwrite(b8, 1, 8, f_) == 8 && std::fwrite(h.data(), 1, h.size(), f_) == h.size();
    if (!ok) {
        std::fclose(f_);
        f_ = nullptr;
        ST2V_THROW(Code::kIo, "%s: write failed", path.c_str());
    }
    advance();
}

SafetensorsWriter::~SafetensorsWriter() {
    if (f_) std::fclose(f_);
}

void SafetensorsWriter::advance() {
    while (cur_ < decls_.size() && written_in_cur_ == sizes_[cur_]) {
        ++cur_;
        written_in_cur_ = 0;
    }
}

void SafetensorsWriter::write(const void* data, size_t bytes) {
    ST2V_CHECK(f_ != nullptr && !finished_, Code::kIo, "%s: writer is closed", path_.c_str());
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
        ST2V_CHECK(cur_ < decls_.size(), Code::kInvalidArgument, "%s: more data written than declared", path_.c_str());
        uint64_t room = sizes_[cur_] - written_in_cur_;
        size_t n = static_cast<size_t>(std::min<uint64_t>(room, bytes));
        ST2V_CHECK(std::fwrite(p, 1, n, f_) == n, Code::kIo, "%s: write failed while writing '%s' (%s)", path_.c_str(),
                   decls_[cur_].name.c_str(), std::strerror(errno));
        p += n;
        bytes -= n;
        written_in_cur_ += n;
        advance();
    }
}

void SafetensorsWriter::write_tensor(const Tensor& t) {
    const size_t i = whole_idx_++;
    ST2V_CHECK(i < decls_.size(), Code::kInvalidArgument, "%s: more tensors written than declared", path_.c_str());
    const Decl& d = decls_[i];
    ST2V_CHECK(t.shape() == d.shape, Code::kShapeMismatch, "%s: tensor '%s' declared %s, got %s", path_.c_str(),
               d.name.c_str(), d.shape.str().c_str(), t.shape().str().c_str());
    if (sizes_[i] == 0) return;
    ST2V_CHECK(cur_ == i && written_in_cur_ == 0, Code::kInvalidArgument,
               "%s: write_tensor('%s') out of order with write()", path_.c_str(), d.name.c_str());
    Tensor c = t.to(d.dtype).contiguous();
    write(c.raw(), c.nbytes());
}

void SafetensorsWriter::close_unfinished() {
    if (!f_) return;
    bool ok = std::fclose(f_) == 0;
    f_ = nullptr;
    finished_ = true;
    ST2V_CHECK(ok, Code::kIo, "%s: write failed at close (%s)", path_.c_str(), std::strerror(errno));
}

void SafetensorsWriter::finish() {
    ST2V_CHECK(f_ != nullptr && !finished_, Code::kIo, "%s: writer is closed", path_.c_str());
    advance();
    ST2V_CHECK(cur_ == decls_.size(), Code::kInvalidArgument, "%s: tensor '%s' was not (fully) written", path_.c_str(),
               decls_[cur_].name.c_str());
    finished_ = true;
    bool ok = std::fflush(f_) == 0;
    ok = (std::fclose(f_) == 0) && ok;
    f_ = nullptr;
    ST2V_CHECK(ok, Code::kIo, "%s: write failed at close (%s)", path_.c_str(), std::strerror(errno));
}

void write_sparse_safetensors(const std::string& path, const std::vector<SafetensorsWriter::Decl>& tensors,
                              const std::map<std::string, std::string>& metadata) {
    uint64_t total = 0, hdr = 0;
    {
        SafetensorsWriter w(path, tensors, metadata);  // writes the header
        for (const auto& d : tensors) total += static_cast<uint64_t>(d.shape.numel()) * dtype_size(d.dtype);
        hdr = w.data_start();
        w.close_unfinished();
    }
    ST2V_CHECK(::truncate(path.c_str(), static_cast<off_t>(hdr + total)) == 0, Code::kIo, "%s: cannot extend (%s)",
               path.c_str(), std::strerror(errno));
}

void save_safetensors(const std::string& path, const WeightStore& ws, const std::map<std::string, std::string>& metadata) {
    std::vector<SafetensorsWriter::Decl> decls;
    for (const std::string& n : ws.names()) {
        const Tensor& t = ws.get(n);
        decls.push_back({n, t.dtype(), t.shape()});
    }
    SafetensorsWriter w(path, decls, metadata);
    for (const std::string& n : ws.names()) w.write_tensor(ws.get(n));
    w.finish();
}

}  // namespace st2v::io
