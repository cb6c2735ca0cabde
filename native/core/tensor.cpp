#include "core/tensor.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/arena.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/profile.h"
#include "core/simd_transpose.h"
#include "core/threadpool.h"

namespace st2v {

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: case DType::I32: return 4;
        case DType::F16: case DType::BF16: case DType::I16: return 2;
        case DType::F64: case DType::I64: return 8;
        case DType::I8: case DType::U8: case DType::Bool: return 1;
    }
    return 1;
}

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "f32";
        case DType::F16: return "f16";
        case DType::BF16: return "bf16";
        case DType::F64: return "f64";
        case DType::I64: return "i64";
        case DType::I32: return "i32";
        case DType::I16: return "i16";
        case DType::I8: return "i8";
        case DType::U8: return "u8";
        case DType::Bool: return "bool";
    }
    return "?";
}

bool dtype_from_name(const std::string& s, DType* out) {
    static const struct { const char* a; const char* b; const char* c; DType t; } table[] = {
        {"f32", "float32", "F32", DType::F32}, {"f16", "float16", "F16", DType::F16},
        {"bf16", "bfloat16", "BF16", DType::BF16}, {"f64", "float64", "F64", DType::F64},
        {"i64", "int64", "I64", DType::I64}, {"i32", "int32", "I32", DType::I32},
        {"i16", "int16", "I16", DType::I16}, {"i8", "int8", "I8", DType::I8},
        {"u8", "uint8", "U8", DType::U8}, {"bool", "bool", "BOOL", DType::Bool},
    };
    for (const auto& e : table) {
        if (s == e.a || s == e.b || s == e.c) { *out = e.t; return true; }
    }
    return false;
}

Shape::Shape(std::initializer_list<int64_t> dims) {
    ST2V_CHECK_ARG(dims.size() <= kMaxDims, "tensor rank %zu exceeds %d", dims.size(), kMaxDims);
    for (int64_t d : dims) d_[static_cast<size_t>(n_++)] = d;
}
Shape::Shape(const std::vector<int64_t>& dims) {
    ST2V_CHECK_ARG(dims.size() <= kMaxDims, "tensor rank %zu exceeds %d", dims.size(), kMaxDims);
    for (int64_t d : dims) d_[static_cast<size_t>(n_++)] = d;
}
int64_t Shape::numel() const {
    int64_t n = 1;
    for (int i = 0; i < n_; ++i) n *= d_[static_cast<size_t>(i)];
    return n;
}
std::string Shape::str() const {
    std::string s = "[";
    for (int i = 0; i < n_; ++i) {
        if (i) s += ", ";
        s += std::to_string(d_[static_cast<size_t>(i)]);
    }
    return s + "]";
}
bool Shape::operator==(const Shape& o) const {
    if (n_ != o.n_) return false;
    for (int i = 0; i < n_; ++i) if (d_[static_cast<size_t>(i)] != o.d_[static_cast<size_t>(i)]) return false;
    return true;
}

void Tensor::set_contiguous_strides() {
    int64_t s = 1;
    for (int i = shape_.ndim() - 1; i >= 0; --i) {
        strides_[static_cast<size_t>(i)] = s;
        s *= shape_[i];
    }
}

bool Tensor::is_contiguous() const {
    int64_t s = 1;
    for (int i = shape_.ndim() - 1; i >= 0; --i) {
        if (shape_[i] != 1 && strides_[static_cast<size_t>(i)] != s) return false;
        s *= shape_[i];
    }
    return true;
}

static void validate_shape(const Shape& shape) {
    for (int i = 0; i < shape.ndim(); ++i)
        ST2V_CHECK_ARG(shape[i] >= 0, "negative dimension in shape %s", shape.str().c_str());
    int64_t n = 1;
    for (int i = 0; i < shape.ndim(); ++i) {
        ST2V_CHECK_ARG(shape[i] == 0 || n <= (int64_t(1) << 46) / shape[i], "shape %s is too large",
                       shape.str().c_str());
        n *= shape[i];
    }
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
    validate_shape(shape);
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = shape;
    t.set_contiguous_strides();
    size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
    auto st = std::make_shared<Storage>();
    st->bytes = bytes;
    if (Arena* a = current_arena()) {
        st->owner = a->allocate(bytes == 0 ? 64 : bytes);
    } else {
        extern std::shared_ptr<void> heap_tensor_alloc(size_t bytes);
        st->owner = heap_tensor_alloc(bytes == 0 ? 64 : bytes);
    }
    st->data = st->owner.get();
    t.storage_ = std::move(st);
    return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
    Tensor t = empty(shape, dtype);
    std::memset(t.raw(), 0, t.nbytes());
    return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
    Tensor t = empty(shape, DType::F32);
    float* p = t.data<float>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = value;
    return t;
}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner) {
    validate_shape(shape);
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = shape;
    t.set_contiguous_strides();
    auto st = std::make_shared<Storage>();
    st->data = data;
    st->bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
    st->owner = std::move(owner);
    t.storage_ = std::move(st);
    return t;
}

Tensor Tensor::from_data(const void* data, const Shape& shape, DType dtype) {
    Tensor t = empty(shape, dtype);
    if (t.nbytes()) std::memcpy(t.raw(), data, t.nbytes());
    return t;
}

float* Tensor::f32() const {
    check_defined(*this, "tensor", "f32()");
    ST2V_CHECK(dtype_ == DType::F32, Code::kDtype, "expected an f32 tensor, got %s", desc().c_str());
    return data<float>();
}

Tensor Tensor::reshape(const Shape& s) const {
    check_defined(*this, "reshape", "input");
    ST2V_CHECK(is_contiguous(), Code::kInvalidArgument, "reshape of a non-contiguous tensor %s", desc().c_str());
    Shape ns = s;
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ns.ndim(); ++i) {
        if (ns[i] == -1) {
            ST2V_CHECK_ARG(infer < 0, "reshape: more than one -1 in %s", s.str().c_str());
            infer = i;
        } else {
            ST2V_CHECK_ARG(ns[i] >= 0, "reshape: bad dimension in %s", s.str().c_str());
            known *= ns[i];
        }
    }
    if (infer >= 0) {
        ST2V_CHECK(known > 0 && numel() % known == 0, Code::kShapeMismatch, "reshape %s -> %s: sizes differ",
                   shape_.str().c_str(), s.str().c_str());
        ns[infer] = numel() / known;
    }
    ST2V_CHECK(ns.numel() == numel(), Code::kShapeMismatch, "reshape %s -> %s: sizes differ", shape_.str().c_str(),
               s.str().c_str());
    Tensor t = *this;
    t.shape_ = ns;
    t.set_contiguous_strides();
    return t;
}

Tensor Tensor::permute(std::initializer_list<int> order) const {
    check_defined(*this, "permute", "input");
    ST2V_CHECK_ARG(static_cast<int>(order.size()) == ndim(), "permute: %zu axes for a %d-d tensor", order.size(),
                   ndim());
    Tensor t = *this;
    bool seen[kMaxDims] = {};
    int i = 0;
    for (int ax : order) {
        ST2V_CHECK_ARG(ax >= 0 && ax < ndim() && !seen[ax], "permute: bad axis order");
        seen[ax] = true;
        t.shape_[i] = shape_[ax];
        t.strides_[static_cast<size_t>(i)] = strides_[static_cast<size_t>(ax)];
        ++i;
    }
    return t;
}

Tensor Tensor::transpose(int a, int b) const {
    check_defined(*this, "transpose", "input");
    if (a < 0) a += ndim();
    if (b < 0) b += ndim();
    ST2V_CHECK_ARG(a >= 0 && a < ndim() && b >= 0 && b < ndim(), "transpose: bad axes");
    Tensor t = *this;
    std::swap(t.shape_[a], t.shape_[b]);
    std::swap(t.strides_[static_cast<size_t>(a)], t.strides_[static_cast<size_t>(b)]);
    return t;
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end) const {
    check_defined(*this, "slice", "input");
    if (dim < 0) dim += ndim();
    ST2V_CHECK_ARG(dim >= 0 && dim < ndim(), "slice: bad dim");
    ST2V_CHECK_ARG(0 <= start && start <= end && end <= shape_[dim], "slice [%lld, %lld) out of range for %s dim %d",
                   (long long)start, (long long)end, shape_.str().c_str(), dim);
    Tensor t = *this;
    t.offset_ += static_cast<size_t>(start * strides_[static_cast<size_t>(dim)]) * dtype_size(dtype_);
    t.shape_[dim] = end - start;
    return t;
}

Tensor Tensor::select(int dim, int64_t index) const {
    if (dim < 0) dim += ndim();
    Tensor t = slice(dim, index, index + 1);
    std::vector<int64_t> dims;
    std::array<int64_t, kMaxDims> strides{};
    int j = 0;
    for (int i = 0; i < t.ndim(); ++i) {
        if (i == dim) continue;
        dims.push_back(t.shape_[i]);
        strides[static_cast<size_t>(j++)] = t.strides_[static_cast<size_t>(i)];
    }
    t.shape_ = Shape(dims);
    t.strides_ = strides;
    return t;
}

namespace {
inline float load_as_f32(const char* p, DType t) {
    switch (t) {
        case DType::F32: { float v; std::memcpy(&v, p, 4); return v; }
        case DType::F16: { uint16_t h; std::memcpy(&h, p, 2); return f16_to_f32(h); }
        case DType::BF16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_f32(h); }
        case DType::F64: { double v; std::memcpy(&v, p, 8); return static_cast<float>(v); }
        case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<float>(v); }
        case DType::I32: { int32_t v; std::memcpy(&v, p, 4); return static_cast<float>(v); }
        case DType::I16: { int16_t v; std::memcpy(&v, p, 2); return static_cast<float>(v); }
        case DType::I8: return static_cast<float>(*reinterpret_cast<const int8_t*>(p));
        case DType::U8: case DType::Bool: return static_cast<float>(*reinterpret_cast<const uint8_t*>(p));
    }
    return 0.f;
}
inline void store_from_f32(char* p, DType t, float v) {
    switch (t) {
        case DType::F32: std::memcpy(p, &v, 4); break;
        case DType::F16: { uint16_t h = f32_to_f16(v); std::memcpy(p, &h, 2); break; }
        case DType::BF16: { uint16_t h = f32_to_bf16(v); std::memcpy(p, &h, 2); break; }
        case DType::F64: { double d = v; std::memcpy(p, &d, 8); break; }
        case DType::I64: { int64_t d = static_cast<int64_t>(v); std::memcpy(p, &d, 8); break; }
        case DType::I32: { int32_t d = static_cast<int32_t>(v); std::memcpy(p, &d, 4); break; }
        case DType::I16: { int16_t d = static_cast<int16_t>(v); std::memcpy(p, &d, 2); break; }
        case DType::I8: *reinterpret_cast<int8_t*>(p) = static_cast<int8_t>(v); break;
        case DType::U8: *reinterpret_cast<uint8_t*>(p) = static_cast<uint8_t>(v); break;
        case DType::Bool: *reinterpret_cast<uint8_t*>(p) = v != 0.f; break;
    }
}
}  // namespace

namespace {
// ---- permuting copies of 4-byte elements as blocked transposes ----------------------------------------------
// A copy whose destination is contiguous along its last dim while the source is contiguous along another dim p
// (every permute the models make: [N, C, HW] <-> [N, HW, C], [B, F, C, HW] <-> [B, HW, F, C]) is, for each index of
// the other dims, a 2-D transpose dst[i * dp + j] = src[i + j * sl]. It runs in 8 x 8 blocks (AVX2: transposed in
// registers), split over the pool; the element-at-a-time loop below it is the fallback for every other copy.
struct CopyDim {
    int64_t n, s, d;  // extent, source stride, destination stride (elements)
};
void transpose_block_scalar(const uint32_t* src, int64_t sl, uint32_t* dst, int64_t dp, int64_t ni, int64_t nj) {
    for (int64_t i = 0; i < ni; ++i)
        for (int64_t j = 0; j < nj; ++j) dst[i * dp + j] = src[i + j * sl];
}
__attribute__((target("avx2"))) void transpose_rows_avx2(const uint32_t* src, int64_t sl, uint32_t* dst, int64_t dp,
                                                         int64_t ni, int64_t L) {
    // ni (<= 8) rows i of the destination, all L columns j
    int64_t j = 0;
    if (ni == 8) {
        for (; j + 8 <= L; j += 8) {
            __m256 v[8];
            for (int q = 0; q < 8; ++q) v[q] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + (j + q) * sl));
            __m256 o[8];
            transpose8x8_ps(v, o);
            float* d = reinterpret_cast<float*>(dst + j);
            for (int q = 0; q < 8; ++q) _mm256_storeu_ps(d + q * dp, o[q]);
        }
    }
    if (j < L) transpose_block_scalar(src + j * sl, sl, dst + j, dp, ni, L - j);
}

// Tries the blocked-transpose copy; false when the layouts are not of that kind (nothing written then).
bool copy_as_transpose(const Shape& shape, const int64_t* sstr, const int64_t* dstr, const void* src, void* dst) {
    CopyDim dims[kMaxDims];
    int nd = 0;
    for (int d = 0; d < shape.ndim(); ++d) {
        if (shape[d] == 1) continue;
        CopyDim c{shape[d], sstr[d], dstr[d]};
        if (nd > 0 && dims[nd - 1].s == c.n * c.s && dims[nd - 1].d == c.n * c.d) {
            dims[nd - 1] = {dims[nd - 1].n * c.n, c.s, c.d};  // contiguous in both: one dim
            continue;
        }
        dims[nd++] = c;
    }
    if (nd < 2 || dims[nd - 1].d != 1 || dims[nd - 1].s == 1) return false;
    int p = -1;
    for (int d = 0; d < nd - 1; ++d)
        if (dims[d].s == 1) p = d;
    if (p < 0) return false;
    const int64_t L = dims[nd - 1].n, sl = dims[nd - 1].s, P = dims[p].n, dp = dims[p].d;
    int64_t outer = 1;
    for (int d = 0; d < nd - 1; ++d)
        if (d != p) outer *= dims[d].n;
    const int64_t pblocks = (P + 7) / 8;
    const bool avx2 = active_isa() != Isa::kPortable;
    const uint32_t* s0 = static_cast<const uint32_t*>(src);
    uint32_t* d0 = static_cast<uint32_t*>(dst);
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, 8 * L));
    parallel_for(outer * pblocks, [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            int64_t o = t / pblocks, so = 0, dof = 0;
            for (int d = nd - 2; d >= 0; --d) {  // the outer index, last outer dim fastest
                if (d == p) continue;
                so += (o % dims[d].n) * dims[d].s;
                dof += (o % dims[d].n) * dims[d].d;
                o /= dims[d].n;
            }
            const int64_t i0 = (t % pblocks) * 8, ni = std::min<int64_t>(8, P - i0);
            const uint32_t* s = s0 + so + i0;
            uint32_t* d = d0 + dof + i0 * dp;
            if (avx2) transpose_rows_avx2(s, sl, d, dp, ni, L);
            else transpose_block_scalar(s, sl, d, dp, ni, L);
        }
    }, grain);
    return true;
}
}  // namespace

void Tensor::copy_from(const Tensor& src) {
    check_defined(*this, "copy", "destination");
    check_defined(src, "copy", "source");
    ST2V_CHECK(src.shape() == shape_, Code::kShapeMismatch, "copy: shape %s into %s", src.shape().str().c_str(),
               shape_.str().c_str());
    const int nd = ndim();
    const int64_t n = numel();
    if (n == 0) return;
    ProfScope prof("copy (layout / dtype)", 0,
                   static_cast<double>(n) * static_cast<double>(dtype_size(src.dtype_) + dtype_size(dtype_)));
    if (src.dtype_ == dtype_ && is_contiguous() && src.is_contiguous()) {
        std::memcpy(raw(), src.raw(), nbytes());
        return;
    }
    const size_t es = dtype_size(src.dtype_), ed = dtype_size(dtype_);
    const bool same = src.dtype_ == dtype_;
    if (same && es == 4 && n >= 4096 && nd >= 2 &&
        copy_as_transpose(shape_, src.strides_.data(), strides_.data(), src.raw(), raw()))
        return;
    const int64_t inner = nd ? shape_[nd - 1] : 1;
    const int64_t sin = nd ? src.strides_[static_cast<size_t>(nd - 1)] : 1;
    const int64_t din = nd ? strides_[static_cast<size_t>(nd - 1)] : 1;
    const int64_t rows = inner ? n / inner : 0;
    const char* sbase = static_cast<const char*>(src.raw());
    char* dbase = static_cast<char*>(raw());
    int64_t idx[kMaxDims] = {};
    for (int64_t r = 0; r < rows; ++r) {
        int64_t so = 0, doff = 0;
        for (int d = 0; d < nd - 1; ++d) {
            so += idx[d] * src.strides_[static_cast<size_t>(d)];
            doff += idx[d] * strides_[static_cast<size_t>(d)];
        }
        const char* s = sbase + so * static_cast<int64_t>(es);
        char* dd = dbase + doff * static_cast<int64_t>(ed);
        if (same && sin == 1 && din == 1) {
            std::memcpy(dd, s, static_cast<size_t>(inner) * es);
        } else if (same) {
            for (int64_t i = 0; i < inner; ++i) std::memcpy(dd + i * din * static_cast<int64_t>(ed), s + i * sin * static_cast<int64_t>(es), es);
        } else {
            for (int64_t i = 0; i < inner; ++i)
                store_from_f32(dd + i * din * static_cast<int64_t>(ed), dtype_, load_as_f32(s + i * sin * static_cast<int64_t>(es), src.dtype_));
        }
        for (int d = nd - 2; d >= 0; --d) {
            if (++idx[d] < shape_[d]) break;
            idx[d] = 0;
        }
    }
}

Tensor Tensor::contiguous() const {
    check_defined(*this, "contiguous", "input");
    if (is_contiguous()) return *this;
    return clone();
}

Tensor Tensor::clone() const {
    check_defined(*this, "clone", "input");
    Tensor t = empty(shape_, dtype_);
    t.copy_from(*this);
    return t;
}

Tensor Tensor::to(DType dt) const {
    check_defined(*this, "to", "input");
    if (dt == dtype_ && is_contiguous()) return *this;
    Tensor t = empty(shape_, dt);
    t.copy_from(*this);
    return t;
}

std::string Tensor::desc() const {
    if (!defined()) return "<undefined>";
    return std::string(dtype_name(dtype_)) + shape_.str();
}

void check_dtype(const Tensor& t, DType want, const char* op, const char* what) {
    check_defined(t, op, what);
    ST2V_CHECK(t.dtype() == want, Code::kDtype, "%s: %s must be %s, got %s", op, what, dtype_name(want),
               t.desc().c_str());
}
void check_ndim(const Tensor& t, int nd, const char* op, const char* what) {
    check_defined(t, op, what);
    ST2V_CHECK(t.ndim() == nd, Code::kShapeMismatch, "%s: %s must be %d-d, got %s", op, what, nd, t.desc().c_str());
}
void check_defined(const Tensor& t, const char* op, const char* what) {
    ST2V_CHECK(t.defined(), Code::kInvalidArgument, "%s: %s is undefined", op, what);
}

}  // namespace st2v
