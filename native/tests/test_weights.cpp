// Weights I/O: JSON parser, safetensors reader validation / sharding / writer, strict binding.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/binding.h"
#include "io/dtype_cast.h"
#include "io/json.h"
#include "io/name_map.h"
#include "io/safetensors.h"
#include "io/weights.h"

using namespace st2v;
namespace fs = std::filesystem;

namespace {

std::string shared_root() {
    const char* e = std::getenv("ST2V_SHARED");
    return e ? e : "../shared";
}

struct TmpDir {
    fs::path p;
    TmpDir() {
        p = fs::temp_directory_path() / ("st2v_weights_" + std::to_string(::getpid()) + "_" + std::to_string(rand()));
        fs::create_directories(p);
    }
    ~TmpDir() {
        std::error_code ec;
        fs::remove_all(p, ec);
    }
    std::string operator/(const std::string& n) const { return (p / n).string(); }
};

void write_raw(const std::string& path, const std::string& header, const std::string& data, int64_t hlen_override = -1) {
    std::ofstream f(path, std::ios::binary);
    uint64_t n = hlen_override >= 0 ? static_cast<uint64_t>(hlen_override) : header.size();
    unsigned char b8[8];
    for (int i = 0; i < 8; ++i) b8[i] = static_cast<unsigned char>(n >> (8 * i));
    f.write(reinterpret_cast<const char*>(b8), 8);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Expects `fn` to throw st2v::Error with `code` and a message containing every string in `needles`.
template <typename F>
void expect_error(F fn, Code code, std::initializer_list<const char*> needles) {
    try {
        fn();
        ADD_FAILURE() << "expected an error " << code_name(code);
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << " / " << n;
    }
}

std::vector<std::pair<std::string, Shape>> read_key_tsv(const std::string& path) {
    std::vector<std::pair<std::string, Shape>> v;
    std::ifstream f(path);
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
        if (line.empty()) continue;
        std::istringstream ls(line);
        std::string key, shape;
        std::getline(ls, key, '\t');
        std::getline(ls, shape, '\t');
        std::vector<int64_t> dims;
        std::istringstream ss(shape);
        std::string d;
        if (shape != "scalar")  // "scalar" = 0-d
            while (std::getline(ss, d, 'x'))
                if (!d.empty()) dims.push_back(std::stoll(d));
        v.emplace_back(key, Shape(dims));
    }
    return v;
}

using KeyList = std::vector<std::pair<std::string, Shape>>;

KeyList keys_of_json(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    io::Json j = io::Json::parse(text);
    KeyList v;
    for (const auto& kv : j.find("tensors")->members()) {
        std::vector<int64_t> dims;
        for (const auto& d : kv.second.find("shape")->items()) dims.push_back(d.as_int());
        v.emplace_back(kv.first, Shape(dims));
    }
    return v;
}

KeyList keys_of_store(const io::WeightStore& ws) {
    KeyList v;
    for (const auto& n : ws.names()) v.emplace_back(n, ws.get(n).shape());
    return v;
}

// target -> shape of the mapped tensors of one component ("" = all)
std::map<std::string, Shape> targets(const io::NameMapResult& r, const std::string& component = "") {
    std::map<std::string, Shape> m;
    for (const auto& t : r.mapped)
        if (component.empty() || t.component == component) m[t.target] = t.shape;
    return m;
}

std::map<std::string, Shape> as_map(const KeyList& k, const std::string& prefix = "") {
    std::map<std::string, Shape> m;
    for (const auto& e : k) m[prefix + e.first] = e.second;
    return m;
}

// Applies one mapping to a source tensor (the op the converter performs), for value checks.
Tensor apply_map(const io::MappedTensor& m, const Tensor& src) {
    if (m.op == "rows") return src.slice(0, m.row_begin, m.row_end).contiguous();
    return src.contiguous().reshape(m.shape);
}

void expect_same_map(const std::map<std::string, Shape>& got, const std::map<std::string, Shape>& want, const char* what) {
    EXPECT_EQ(got.size(), want.size()) << what;
    for (const auto& kv : want) {
        auto it = got.find(kv.first);
        if (it == got.end()) {
            ADD_FAILURE() << what << ": missing " << kv.first;
            continue;
        }
        EXPECT_EQ(it->second, kv.second) << what << ": " << kv.first;
    }
    for (const auto& kv : got)
        if (!want.count(kv.first)) ADD_FAILURE() << what << ": unexpected " << kv.first;
}

}  // namespace

TEST(WeightsJson, ParsesAllValueKinds) {
    io::Json j = io::Json::parse(
        R"( {"a": [1, -2, 3.5, 1e3, -0.0, 12345678901234], "b": {"c": null, "d": true, "e": false},
             "s": "x\"y\\z\/\b\f\n\r\t\u00e9\ud83d\ude00", "empty": {}, "ea": []} )");
    ASSERT_TRUE(j.is_object());
    const io::Json* a = j.find("a");
    ASSERT_TRUE(a && a->is_array());
    ASSERT_EQ(a->items().size(), 6u);
    EXPECT_TRUE(a->items()[0].is_integer());
    EXPECT_EQ(a->items()[1].as_int(), -2);
    EXPECT_FALSE(a->items()[2].is_integer());
    EXPECT_DOUBLE_EQ(a->items()[2].as_double(), 3.5);
    EXPECT_FALSE(a->items()[3].is_integer());
    EXPECT_DOUBLE_EQ(a->items()[3].as_double(), 1000.0);
    EXPECT_EQ(a->items()[5].as_int(), 12345678901234LL);
    EXPECT_TRUE(j.find("b")->find("c")->is_null());
    EXPECT_TRUE(j.find("b")->find("d")->as_bool());
    EXPECT_EQ(j.find("s")->as_string(), "x\"y\\z/\b\f\n\r\t\xC3\xA9\xF0\x9F\x98\x80");
    EXPECT_TRUE(j.find("empty")->is_object());
    EXPECT_TRUE(j.find("ea")->items().empty());
    // Deep but legal nesting.
    std::string deep(300, '[');
    deep += std::string(300, ']');
    EXPECT_NO_THROW(io::Json::parse(deep));
}

TEST(WeightsJson, RejectsInvalid) {
    for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"abc", "{} x",
                            "\"\\x\"", "[1 2]", "{'a':1}", "\"a\tb\""}) {
        EXPECT_THROW(io::Json::parse(std::string(bad)), Error) << bad;
    }
    std::string deep(600, '[');
    deep += std::string(600, ']');
    EXPECT_THROW(io::Json::parse(deep), Error);
}

TEST(WeightsSafetensors, WriterRoundTripZeroCopy) {
    TmpDir d;
    Tensor a = Tensor::empty({2, 3});
    for (int i = 0; i < 6; ++i) a.f32()[i] = static_cast<float>(i) - 2.5f;
    Tensor b = Tensor::zeros({4}, DType::I64);
    for (int i = 0; i < 4; ++i) b.data<int64_t>()[i] = 1000000000000LL * i;
    Tensor e = Tensor::empty({0, 4});
    io::WeightStore ws;
    ws.add("a", a);
    ws.add("b.long", b);
    ws.add("e\"mpty", e);  // a name that needs escaping
    io::save_safetensors(d / "x.safetensors", ws, {{"format", "pt"}});
    io::SafetensorsHeader h = io::read_safetensors_header(d / "x.safetensors");
    EXPECT_EQ(h.data_start % 8, 0u);
    EXPECT_EQ(h.metadata.at("format"), "pt");
    io::WeightStore r = io::load_safetensors(d / "x.safetensors");
    ASSERT_EQ(r.size(), 3u);
    const Tensor& ra = r.get("a");
    EXPECT_EQ(ra.shape(), Shape({2, 3}));
    for (int i = 0; i < 6; ++i) EXPECT_EQ(ra.f32()[i], a.f32()[i]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r.get("b.long").data<int64_t>()[i], b.data<int64_t>()[i]);
    EXPECT_EQ(r.get("e\"mpty").numel(), 0);
    // Zero-copy: the tensors borrow one mapping (its owner is shared, the storage is not owned memory).
    EXPECT_EQ(r.get("a").storage()->owner, r.get("b.long").storage()->owner);
}

TEST(WeightsSafetensors, StreamingWriterPieces) {
    TmpDir d;
    std::vector<io::SafetensorsWriter::Decl> decls = {{"x", DType::F16, Shape({3})}, {"y", DType::U8, Shape({5})}};
    io::SafetensorsWriter w(d / "s.safetensors", decls);
    const unsigned char bytes[11] = {0, 0x3c, 0, 0x40, 0, 0xc0, 1, 2, 3, 4, 5};
    w.write(bytes, 4);
    w.write(bytes + 4, 7);  // crosses the tensor boundary
    w.finish();
    io::WeightStore r = io::load_safetensors(d / "s.safetensors");
    EXPECT_EQ(r.get("x").data<uint16_t>()[1], 0x4000);
    EXPECT_EQ(r.get("y").data<uint8_t>()[4], 5);
    // Too little data is refused at finish(), too much at write().
    io::SafetensorsWriter w2(d / "t.safetensors", decls);
    w2.write(bytes, 3);
    EXPECT_THROW(w2.finish(), Error);
    io::SafetensorsWriter w3(d / "u.safetensors", decls);
    EXPECT_THROW(w3.write(std::string(12, 'x').data(), 12), Error);
}

TEST(WeightsSafetensors, ValidationErrorsNameFileAndTensor) {
    TmpDir d;
    const std::string p = d / "bad.safetensors";
    auto load = [&] { io::load_safetensors(p); };
    // Header length past the end of the file.
    write_raw(p, "{}", "", 4096);
    expect_error(load, Code::kFormat, {"bad.safetensors", "exceeds the file"});
    // Too small.
    { std::ofstream f(p, std::ios::binary); f << "abc"; }
    expect_error(load, Code::kFormat, {"bad.safetensors", "too small"});
    // Not JSON.
    write_raw(p, "{\"w\": {\"dtype\": \"F32\", ", "");
    expect_error(load, Code::kFormat, {"bad.safetensors", "invalid JSON"});
    // JSON but not an object.
    write_raw(p, "[1, 2]", "");
    expect_error(load, Code::kFormat, {"not an object"});
    // Unknown dtype.
    write_raw(p, R"({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", "ab");
    expect_error(load, Code::kFormat, {"bad.safetensors", "'w'", "F8_E4M3"});
    // Shape x dtype != span.
    write_raw(p, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", std::string(8, '\0'));
    expect_error(load, Code::kFormat, {"'w'", "[3]", "does not match"});
    // Offsets outside the file.
    write_raw(p, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", std::string(8, '\0'));
    expect_error(load, Code::kFormat, {"'w'", "outside"});
    // Begin > end.
    write_raw(p, R"({"w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", std::string(8, '\0'));
    expect_error(load, Code::kFormat, {"'w'", "begin <= end"});
    // Overlap.
    write_raw(p, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
              std::string(12, '\0'));
    expect_error(load, Code::kFormat, {"'a'", "'b'", "overlap"});
    // Negative / fractional shape.
    write_raw(p, R"({"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}})", "");
    expect_error(load, Code::kFormat, {"'w'", "non-negative integers"});
    write_raw(p, R"({"w": {"dtype": "U8", "shape": [1.5], "data_offsets": [0, 0]}})", "");
    expect_error(load, Code::kFormat, {"'w'"});
    // Missing fields.
    write_raw(p, R"({"w": {"dtype": "U8", "data_offsets": [0, 0]}})", "");
    expect_error(load, Code::kFormat, {"'w'", "shape"});
    // Duplicate names.
    write_raw(p, R"({"w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}, "w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}})", "");
    expect_error(load, Code::kFormat, {"'w'", "twice"});
    // Missing file.
    expect_error([&] { io::load_safetensors(d / "nope.safetensors"); }, Code::kNotFound, {"nope.safetensors"});
    // Valid: any JSON layout (whitespace, member order, metadata, escaped names) is accepted.
    write_raw(p, "{\n \"__metadata__\" : {\"k\":\"v\"},\n \"w\\u0041\" : { \"data_offsets\" : [ 0 , 4 ] , \"shape\" : [ ] , \"dtype\" : \"F32\" , \"extra\": [1,{}] } }",
              std::string(4, '\0'));
    io::WeightStore ok = io::load_safetensors(p);
    EXPECT_TRUE(ok.has("wA"));
    EXPECT_EQ(ok.get("wA").numel(), 1);
}

TEST(WeightsSafetensors, ShardedAndFolder) {
    TmpDir d;
    io::WeightStore s1, s2;
    s1.add("a", Tensor::full({2}, 1.f));
    s2.add("b", Tensor::full({3}, 2.f));
    io::save_safetensors(d / "model-00001-of-00002.safetensors", s1);
    io::save_safetensors(d / "model-00002-of-00002.safetensors", s2);
    {
        std::ofstream f(d / "model.safetensors.index.json");
        f << R"({"metadata": {"total_size": 20}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";
    }
    io::WeightStore r = io::load_safetensors(d / "model.safetensors.index.json");
    EXPECT_EQ(r.size(), 2u);
    EXPECT_EQ(r.get("b").f32()[2], 2.f);
    io::WeightStore rf = io::load_safetensors(d.p.string());  // folder with an index
    EXPECT_EQ(rf.size(), 2u);
    // A weight_map entry missing from its shard.
    {
        std::ofstream f(d / "model.safetensors.index.json");
        f << R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "zz": "model-00001-of-00002.safetensors"}})";
    }
    expect_error([&] { io::load_safetensors(d / "model.safetensors.index.json"); }, Code::kFormat, {"'zz'"});
    fs::remove(d / "model.safetensors.index.json");
    // Folder without an index: every *.safetensors file.
    io::WeightStore rf2 = io::load_safetensors(d.p.string());
    EXPECT_EQ(rf2.size(), 2u);
    // The same name in two files is refused.
    io::save_safetensors(d / "dup.safetensors", s1);
    expect_error([&] { io::load_safetensors(d.p.string()); }, Code::kFormat, {"'a'", "another file"});
}

TEST(WeightsSafetensors, GoldenFilesLoad) {
    const std::string root = shared_root() + "/golden";
    if (!fs::exists(root + "/vae/vae_diffusers.safetensors")) GTEST_SKIP() << "ST2V_SHARED not found: " << root;
    for (const char* f : {"/vae/vae_diffusers.safetensors", "/vae/vae_ldm.safetensors",
                          "/vae/vae_diffusers_legacy_attn.safetensors", "/clip/openclip_tiny.safetensors",
                          "/st2v/weights.safetensors"}) {
        io::WeightStore w = io::load_safetensors(root + f);
        EXPECT_GT(w.size(), 100u) << f;
    }
}

TEST(WeightsBinding, StrictBinding) {
    io::WeightStore ws;
    ws.add("conv.weight", Tensor::zeros({4, 3, 3, 3}));
    ws.add("conv.bias", Tensor::zeros({4}));
    ws.add("extra.one", Tensor::zeros({1}));
    ws.add("ids", Tensor::zeros({2}, DType::I64));
    io::BindOptions quiet;
    quiet.log_unexpected = false;
    io::BindResult r = io::bind_strict({{"conv.weight", {4, 3, 3, 3}}, {"conv.bias", {4}}}, ws, quiet);
    EXPECT_EQ(r.bound.size(), 2u);
    EXPECT_EQ(r.unexpected, (std::vector<std::string>{"extra.one", "ids"}));
    EXPECT_NE(r.warning.find("2 unexpected"), std::string::npos);
    // Missing: lists the first N names and the total.
    std::vector<io::Expected> want = {{"conv.weight", {4, 3, 3, 3}}};
    for (int i = 0; i < 15; ++i) want.push_back({"missing." + std::to_string(i), {1}});
    quiet.list_max = 3;
    expect_error([&] { io::bind_strict(want, ws, quiet); }, Code::kWeightsMissing,
                 {"15 of 16", "missing.0", "missing.2", "+12 more"});
    // Wrong shape: names the key and both shapes.
    expect_error([&] { io::bind_strict({{"conv.weight", {4, 3, 1, 1}}}, ws, quiet); }, Code::kShapeMismatch,
                 {"conv.weight", "[4, 3, 1, 1]", "[4, 3, 3, 3]"});
    // Dtype outside the allowed set.
    expect_error([&] { io::bind_strict({{"ids", {2}}}, ws, quiet); }, Code::kDtype, {"ids", "i64"});
}

TEST(WeightsBinding, FullSizeSparseCheckpointBindsAllKeys) {
    const std::string tsv = shared_root() + "/docs/streamingt2v-state-dict-keys.tsv";
    if (!fs::exists(tsv)) GTEST_SKIP() << "ST2V_SHARED not found: " << tsv;
    auto keys = read_key_tsv(tsv);
    ASSERT_EQ(keys.size(), 2389u);
    TmpDir d;
    std::vector<io::SafetensorsWriter::Decl> decls;
    std::vector<io::Expected> want;
    for (const auto& k : keys) {
        decls.push_back({k.first, DType::F16, k.second});
        want.push_back({k.first, k.second});
    }
    io::write_sparse_safetensors(d / "full.safetensors", decls);
    struct stat st;
    ASSERT_EQ(::stat((d / "full.safetensors").c_str(), &st), 0);
    EXPECT_GT(st.st_size, 2'000'000'000LL);                       // ~2.8 GB logical size at f16
    EXPECT_LT(static_cast<int64_t>(st.st_blocks) * 512, 64 << 20);  // but almost nothing on disk
    io::WeightStore ws = io::load_safetensors(d / "full.safetensors");
    io::BindOptions quiet;
    quiet.log_unexpected = false;
    io::BindResult r = io::bind_strict(want, ws, quiet);
    EXPECT_EQ(r.bound.size(), 2389u);
    EXPECT_TRUE(r.unexpected.empty());
}

TEST(WeightsNameMap, OfficialKeyListsMapToThemselves) {
    const std::string root = shared_root();
    if (!fs::exists(root + "/docs/streamingt2v-state-dict-keys.tsv")) GTEST_SKIP() << "ST2V_SHARED not found";
    auto keys = read_key_tsv(root + "/docs/streamingt2v-state-dict-keys.tsv");
    std::vector<std::string> names;
    for (const auto& k : keys) names.push_back(k.first);
    EXPECT_EQ(io::detect_naming(names), "streamingt2v");
    io::NameMapResult r = io::map_names("", keys);
    EXPECT_TRUE(r.unmapped.empty());
    expect_same_map(targets(r), as_map(keys), "streamingt2v tsv");
    std::map<std::string, int> per;
    for (const auto& t : r.mapped) per[t.component]++;
    EXPECT_EQ(per["unet"], 1703);
    EXPECT_EQ(per["cam"], 682);
    EXPECT_EQ(per["resampler"], 4);
    // The golden tiny model (official names) too.
    io::WeightStore g = io::load_safetensors(root + "/golden/st2v/weights.safetensors");
    io::NameMapResult rg = io::map_names("", keys_of_store(g));
    EXPECT_EQ(rg.naming, "streamingt2v");
    EXPECT_TRUE(rg.unmapped.empty());
    EXPECT_EQ(rg.mapped.size(), g.size());
}

TEST(WeightsNameMap, EnhancerTsvBothNamings) {
    const std::string tsv = shared_root() + "/docs/enhancer-state-dict-keys.tsv";
    if (!fs::exists(tsv)) GTEST_SKIP() << "ST2V_SHARED not found";
    // columns: key shape numel diffusers_unet3d_key diffusers_shape
    KeyList ms, diff;
    std::ifstream f(tsv);
    std::string line;
    std::getline(f, line);
    auto parse_shape = [](const std::string& s) {
        std::vector<int64_t> d;
        std::istringstream ss(s);
        std::string x;
        if (s != "scalar")
            while (std::getline(ss, x, 'x')) d.push_back(std::stoll(x));
        return Shape(d);
    };
    while (std::getline(f, line)) {
        std::vector<std::string> col;
        std::istringstream ls(line);
        std::string c;
        while (std::getline(ls, c, '\t')) col.push_back(c);
        ASSERT_GE(col.size(), 5u) << line;
        ms.emplace_back(col[0], parse_shape(col[1]));
        if (!col[3].empty() && col[3] != "-") diff.emplace_back(col[3], parse_shape(col[4]));
    }
    EXPECT_EQ(ms.size(), 1480u);
    io::NameMapResult r = io::map_names("", ms);
    EXPECT_EQ(r.naming, "enhancer");
    expect_same_map(targets(r, "enhancer"), as_map(ms, "enhancer."), "enhancer tsv");
    io::NameMapResult rd = io::map_names("", diff);
    EXPECT_EQ(rd.naming, "diffusers_unet");
    expect_same_map(targets(rd, "unet"), as_map(diff, "base_model."), "enhancer tsv, diffusers column");
    // The golden enhancer weights.
    io::WeightStore g = io::load_safetensors(shared_root() + "/golden/enhancer/weights.safetensors");
    io::NameMapResult rg = io::map_names("", keys_of_store(g));
    EXPECT_EQ(rg.naming, "enhancer");
    EXPECT_EQ(rg.mapped.size(), g.size());
}

TEST(WeightsNameMap, VaeNamingsBuildTheDiffusersVae) {
    const std::string v = shared_root() + "/golden/vae";
    if (!fs::exists(v + "/vae_diffusers.safetensors")) GTEST_SKIP() << "ST2V_SHARED not found";
    io::WeightStore diff = io::load_safetensors(v + "/vae_diffusers.safetensors");
    const auto want = as_map(keys_of_store(diff), "vae.");
    // The StreamingT2V layout's key list is the diffusers one under vae.
    expect_same_map(want, as_map(keys_of_json(v + "/vae_streamingt2v.keys.json")), "vae_streamingt2v.keys.json");
    for (const char* f : {"vae_diffusers.safetensors", "vae_diffusers_legacy_attn.safetensors", "vae_ldm.safetensors"}) {
        io::WeightStore src = io::load_safetensors(v + "/" + f);
        io::NameMapResult r = io::map_names("", keys_of_store(src));
        EXPECT_TRUE(r.unmapped.empty()) << f;
        expect_same_map(targets(r, "vae"), want, f);
        // Values: each mapped tensor equals the diffusers one exactly.
        for (const auto& m : r.mapped) {
            Tensor got = apply_map(m, src.get(m.source));
            const Tensor& ref = diff.get(m.target.substr(4));
            ASSERT_EQ(got.shape(), ref.shape()) << f << " " << m.target;
            EXPECT_EQ(std::memcmp(got.raw(), ref.raw(), ref.nbytes()), 0) << f << " " << m.source << " -> " << m.target;
        }
    }
    // The full-size SD 2.1 key table: ldm names (first_stage_model.) -> diffusers names and shapes.
    std::ifstream t(v + "/full_keys_diffusers.tsv");
    std::string line;
    std::getline(t, line);
    KeyList ldm;
    std::map<std::string, Shape> want_full;
    while (std::getline(t, line)) {
        std::vector<std::string> col;
        std::istringstream ls(line);
        std::string c;
        while (std::getline(ls, c, '\t')) col.push_back(c);
        ASSERT_EQ(col.size(), 4u) << line;
        auto shp = [](const std::string& s) {
            std::vector<int64_t> d;
            std::istringstream ss(s);
            std::string x;
            while (std::getline(ss, x, 'x')) d.push_back(std::stoll(x));
            return Shape(d);
        };
        ldm.emplace_back("first_stage_model." + col[2], shp(col[3]));
        want_full["vae." + col[0]] = shp(col[1]);
    }
    ldm.emplace_back("model.diffusion_model.out.2.weight", Shape({4, 320, 3, 3}));  // rest of an SD checkpoint
    io::NameMapResult r = io::map_names("", ldm);
    EXPECT_EQ(r.naming, "ldm_vae");
    EXPECT_EQ(r.dropped, std::vector<std::string>{"model.diffusion_model.out.2.weight"});
    expect_same_map(targets(r), want_full, "full_keys_diffusers.tsv");
}

TEST(WeightsNameMap, OpenClipBuildsImageAndTextEncoders) {
    const std::string c = shared_root() + "/golden/clip";
    if (!fs::exists(c + "/openclip_tiny.safetensors")) GTEST_SKIP() << "ST2V_SHARED not found";
    io::WeightStore oc = io::load_safetensors(c + "/openclip_tiny.safetensors");
    io::NameMapResult r = io::map_names("", keys_of_store(oc));
    EXPECT_EQ(r.naming, "openclip");
    EXPECT_TRUE(r.unmapped.empty());
    expect_same_map(targets(r, "image_encoder"), as_map(keys_of_json(c + "/streamingt2v_image_encoder_tiny.keys.json")),
                    "image encoder");
    expect_same_map(targets(r, "text_encoder"), as_map(keys_of_json(c + "/streamingt2v_text_encoder_tiny.keys.json")),
                    "text encoder");
    // The last block (the 24th of 24) -> text_last_block.* (the CLIP score's full text tower); nothing dropped.
    for (const auto& d : r.dropped) EXPECT_EQ(d, "attn_mask") << d;
    size_t last = 0;
    for (const auto& m : r.mapped)
        if (m.component == "text_last_block") {
            ++last;
            EXPECT_EQ(m.source.rfind("transformer.resblocks.23.", 0), 0u) << m.source;
        }
    EXPECT_EQ(last, 16u);
    // HF names -> the same canonical text encoder.
    KeyList hf = keys_of_json(c + "/hf_text_encoder_tiny.keys.json");
    io::NameMapResult rh = io::map_names("", hf);
    EXPECT_EQ(rh.naming, "hf_clip_text");
    expect_same_map(targets(rh, "text_encoder"), as_map(keys_of_json(c + "/streamingt2v_text_encoder_tiny.keys.json")),
                    "hf text");
    // q/k/v rows of in_proj.
    Tensor in_proj = oc.get("transformer.resblocks.0.attn.in_proj_weight");
    for (const auto& m : r.mapped) {
        if (m.source != "transformer.resblocks.0.attn.in_proj_weight") continue;
        Tensor got = apply_map(m, in_proj);
        int64_t w = in_proj.size(1);
        EXPECT_EQ(std::memcmp(got.raw(), in_proj.data<float>() + m.row_begin * w, got.nbytes()), 0) << m.target;
    }
}

TEST(WeightsNameMap, UnknownNamingAndUndetectableKeys) {
    expect_error([] { io::map_names("nope", {}); }, Code::kInvalidArgument, {"nope"});
    expect_error([] { io::map_names("", {{"foo.bar", Shape({1})}}); }, Code::kUnsupported, {"foo.bar"});
}

TEST(WeightsDtypeCast, RoundTripsAndRefusesIntegers) {
    // every finite f16 survives f16 -> f32 -> f16; bf16 likewise
    std::vector<uint16_t> h(65536), back(65536);
    std::vector<float> f(65536);
    for (int i = 0; i < 65536; ++i) h[i] = static_cast<uint16_t>(i);
    for (DType t : {DType::F16, DType::BF16}) {
        io::cast_elements(h.data(), t, f.data(), DType::F32, h.size());
        io::cast_elements(f.data(), DType::F32, back.data(), t, f.size());
        int bad = 0;
        for (int i = 0; i < 65536; ++i)
            if (!std::isnan(f[i]) && back[i] != h[i]) bad++;
        EXPECT_EQ(bad, 0) << dtype_name(t);
    }
    double d[2] = {0.1, -3.0};
    float o[2];
    io::cast_elements(d, DType::F64, o, DType::F32, 2);
    EXPECT_EQ(o[0], 0.1f);
    EXPECT_EQ(o[1], -3.0f);
    int32_t i32 = 1;
    EXPECT_THROW(io::cast_elements(&i32, DType::I32, o, DType::F32, 1), Error);
}
