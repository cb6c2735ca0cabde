// safetensors: validated header reading, zero-copy mmap loading (io::load_safetensors in weights.h), and a
// streaming writer.
//
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [a, b]},
// "__metadata__": {str: str}}, then the data area; offsets are relative to the data area.
// Validation (ERR_FORMAT naming the file and the tensor): header length inside the file, valid JSON object,
// known dtype, integer non-negative shape, numel x dtype size == b - a, a <= b <= data size, no two tensors
// overlapping. Unreadable files are ERR_IO / ERR_NOT_FOUND.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weights.h"

namespace st2v::io {

struct SafetensorsEntry {
    std::string name;
    DType dtype = DType::F32;
    Shape shape;
    uint64_t begin = 0, end = 0;  // relative to the data area
};

struct SafetensorsHeader {
    std::vector<SafetensorsEntry> entries;  // in data-offset order
    std::map<std::string, std::string> metadata;
    uint64_t data_start = 0;  // absolute file offset of the data area (8 + header length)
    uint64_t file_size = 0;
};

// Reads and validates only the header (pread; no mapping).
SafetensorsHeader read_safetensors_header(const std::string& path);

// Loads a single .safetensors file (zero-copy views into one shared read-only mapping).
WeightStore load_safetensors_file(const std::string& path);

// The safetensors dtype string ("F32", "BF16", "BOOL", ...).
const char* safetensors_dtype_name(DType t);

// Streaming writer: declare every tensor first (the header is written at once), then write the data of
// each tensor in declaration order, in any number of pieces. Nothing is buffered beyond stdio.
// The header is padded with spaces so the data area starts 8-byte aligned.
class SafetensorsWriter {
  public:
    struct Decl {
        std::string name;
        DType dtype;
        Shape shape;
    };
    SafetensorsWriter(const std::string& path, const std::vector<Decl>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
    ~SafetensorsWriter();
    SafetensorsWriter(const SafetensorsWriter&) = delete;
    SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

    // Appends bytes of the current tensor (throws if they overrun it).
    void write(const void* data, size_t bytes);
    // Convenience: the whole tensor (converted to its declared dtype when needed; contiguous copy if strided).
    void write_tensor(const Tensor& t);
    // Checks that every declared byte was written, flushes and closes (throws ERR_IO on failure).
    void finish();
    // Closes without checking that the data was written (the file is then incomplete).
    void close_unfinished();
    // Absolute file offset of the data area.
    uint64_t data_start() const { return data_start_; }
    // Index of the tensor the next bytes belong to.
    size_t current() const { return cur_; }

  private:
    std::string path_;
    FILE* f_ = nullptr;
    std::vector<Decl> decls_;
    std::vector<uint64_t> sizes_;
    size_t cur_ = 0;
    uint64_t written_in_cur_ = 0;
    uint64_t data_start_ = 0;
    size_t whole_idx_ = 0;  // next tensor for write_tensor()
    bool finished_ = false;
    void advance();
};

// Writes a header for `tensors` and extends the file to its full size without writing data (a sparse file:
// no disk or RAM cost; the data reads as zeros). For binding tests with full-size key lists.
void write_sparse_safetensors(const std::string& path, const std::vector<SafetensorsWriter::Decl>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Convenience: writes a whole WeightStore (names sorted) to one file.
void save_safetensors(const std::string& path, const WeightStore& ws,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace st2v::io
