// Arena: a caching allocator for activations.
//
// A denoising step allocates and frees the same sequence of large buffers every time. Going to malloc
// for each means fresh pages (page faults, zeroing) on every step. An Arena keeps freed blocks in
// size classes and hands them back on the next request of that class, so after the first step the
// engine's activation memory is a fixed set of blocks: peak memory is bounded by one step of one chunk,
// never by the video length. Install one for the current thread with ArenaScope; Tensor::empty() then
// allocates from it. Blocks freed after the arena is gone are released to the heap (the deleter holds
// a shared reference to the arena's state).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>
#include <map>

namespace st2v {

void* aligned_alloc64(size_t bytes);  // throws Error{kOutOfMemory}
void aligned_free64(void* p);

class Arena {
  public:
    Arena();
    ~Arena();
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;

    // Returns an owning pointer whose deleter gives the block back to this arena.
    std::shared_ptr<void> allocate(size_t bytes, size_t* granted = nullptr);
    void trim();                      // release all cached (free) blocks to the heap
    size_t bytes_in_use() const;      // handed out and not yet returned
    size_t bytes_cached() const;      // free blocks kept for reuse
    size_t peak_bytes() const;        // max of in-use over the arena's life (or since reset_peak)
    void reset_peak();

    struct State;

  private:
    std::shared_ptr<State> state_;
};

// Sets the arena used by Tensor::empty on this thread for the scope's lifetime (nullptr = heap).
class ArenaScope {
  public:
    explicit ArenaScope(Arena* a);
    ~ArenaScope();
    ArenaScope(const ArenaScope&) = delete;
    ArenaScope& operator=(const ArenaScope&) = delete;

  private:
    Arena* prev_;
};
Arena* current_arena();

// Process-wide accounting of bytes allocated through Tensor::empty (heap or arena), for tests/bench.
size_t tensor_bytes_live();
size_t tensor_bytes_peak();
void tensor_bytes_reset_peak();

}  // namespace st2v
