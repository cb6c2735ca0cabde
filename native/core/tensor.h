// st2v::Tensor: a small, strided, reference-counted n-d array.
//
// Layout convention (stated once, here): shapes and strides are in PyTorch axis order, row-major,
// strides counted in elements. Video activations are stored as [B*F, C, H, W] (frames folded into the
// batch, frame-major within a sample: index = b*F + f), exactly as the official diffusers code holds them
// between blocks, so every reshape/permute of the reference maps 1:1 onto ours. Shape comments in model
// code use the PyTorch order of the reference ([N, C, F, H, W] when a 5-D view is meant).
//
// Storage is shared (views share it); it is either owned (64-byte aligned, from the current Arena or the
// heap) or borrowed from somewhere else (an mmap'd weight file, a JS buffer) and kept alive by `owner`.
// Tensors are cheap to copy (they copy a shared_ptr). Compute ops live in ops/ops.h.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace st2v {

enum class DType : uint8_t { F32 = 0, F16 = 1, BF16 = 2, F64 = 3, I64 = 4, I32 = 5, I16 = 6, I8 = 7, U8 = 8, Bool = 9 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);          // "f32", "f16", "bf16", ...
bool dtype_from_name(const std::string& s, DType* out);  // accepts "f32"/"float32"/"F32" (safetensors) ...

constexpr int kMaxDims = 8;

class Shape {
  public:
    Shape() = default;
    Shape(std::initializer_list<int64_t> dims);
    explicit Shape(const std::vector<int64_t>& dims);
    int ndim() const { return n_; }
    int64_t operator[](int i) const { return d_[static_cast<size_t>(i < 0 ? i + n_ : i)]; }
    int64_t& operator[](int i) { return d_[static_cast<size_t>(i < 0 ? i + n_ : i)]; }
    int64_t numel() const;
    std::vector<int64_t> vec() const { return std::vector<int64_t>(d_.begin(), d_.begin() + n_); }
    std::string str() const;  // "[2, 4, 16, 8, 8]"
    bool operator==(const Shape& o) const;
    bool operator!=(const Shape& o) const { return !(*this == o); }

  private:
    std::array<int64_t, kMaxDims> d_{};
    int n_ = 0;
};

struct Storage {
    void* data = nullptr;
    size_t bytes = 0;
    std::shared_ptr<void> owner;  // frees / unmaps / returns to arena when the last user goes
};

class Tensor {
  public:
    Tensor() = default;

    // New contiguous tensor, uninitialised (zeros() for zero-filled). Memory comes from the thread's
    // current Arena when one is installed (see arena.h), else from the heap, 64-byte aligned.
    static Tensor empty(const Shape& shape, DType dtype = DType::F32);
    static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
    static Tensor full(const Shape& shape, float value);
    // Wrap memory owned elsewhere; `owner` keeps it alive (may be null if the caller guarantees lifetime).
    static Tensor borrow(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner);
    // Copy of host data into a new tensor.
    static Tensor from_data(const void* data, const Shape& shape, DType dtype);

    bool defined() const { return storage_ != nullptr; }
    DType dtype() const { return dtype_; }
    const Shape& shape() const { return shape_; }
    int ndim() const { return shape_.ndim(); }
    int64_t size(int d) const { return shape_[d]; }
    int64_t stride(int d) const { return strides_[static_cast<size_t>(d < 0 ? d + ndim() : d)]; }
    int64_t numel() const { return shape_.numel(); }
    size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
    bool is_contiguous() const;

    void* raw() const { return static_cast<char*>(storage_->data) + offset_; }
    template <typename T> T* data() const { return static_cast<T*>(raw()); }
    float* f32() const;  // checked: dtype must be F32

    // Views (share storage). reshape requires a contiguous tensor; one dim may be -1.
    Tensor reshape(const Shape& s) const;
    Tensor permute(std::initializer_list<int> order) const;
    Tensor transpose(int a, int b) const;
    Tensor slice(int dim, int64_t start, int64_t end) const;  // [start, end) along dim
    Tensor select(int dim, int64_t index) const;              // drops dim

    Tensor contiguous() const;            // self if already contiguous, else a packed copy
    Tensor clone() const;                 // always a new contiguous copy
    Tensor to(DType t) const;             // converted contiguous copy (self if same dtype & contiguous)
    void copy_from(const Tensor& src);    // same shape; any strides, dtype conversion allowed

    std::string desc() const;  // "f32[2, 4, 16, 8, 8]"
    const std::shared_ptr<Storage>& storage() const { return storage_; }

  private:
    std::shared_ptr<Storage> storage_;
    size_t offset_ = 0;  // bytes
    DType dtype_ = DType::F32;
    Shape shape_;
    std::array<int64_t, kMaxDims> strides_{};
    void set_contiguous_strides();
};

// Checks used by ops: throw ERR_SHAPE_MISMATCH / ERR_DTYPE with the op's name in the message.
void check_dtype(const Tensor& t, DType want, const char* op, const char* what);
void check_ndim(const Tensor& t, int ndim, const char* op, const char* what);
void check_defined(const Tensor& t, const char* op, const char* what);

}  // namespace st2v
