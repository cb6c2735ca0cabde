#include "core/arena.h"

#include <atomic>
#include <cstdlib>
#include <new>

#include "core/status.h"

namespace st2v {

namespace {
std::atomic<size_t> g_live{0}, g_peak{0};
void note_alloc(size_t n) {
    size_t now = g_live.fetch_add(n) + n;
    size_t p = g_peak.load();
    while (now > p && !g_peak.compare_exchange_weak(p, now)) {}
}
void note_free(size_t n) { g_live.fetch_sub(n); }
thread_local Arena* t_arena = nullptr;

// Size classes: round up to 1/8 steps of the power of two (<= 12.5 % waste), min 256 bytes.
size_t size_class(size_t bytes) {
    if (bytes <= 256) return 256;
    size_t p = 1;
    while (p < bytes) p <<= 1;
    size_t step = p / 16;
    if (step < 64) step = 64;
    return (bytes + step - 1) / step * step;
}
}  // namespace

void* aligned_alloc64(size_t bytes) {
    size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n == 0 ? 64 : n);
    if (!p) ST2V_THROW(Code::kOutOfMemory, "out of host memory allocating %zu bytes", bytes);
    return p;
}
void aligned_free64(void* p) { std::free(p); }

std::shared_ptr<void> heap_tensor_alloc(size_t bytes) {
    void* p = aligned_alloc64(bytes);
    note_alloc(bytes);
    return std::shared_ptr<void>(p, [bytes](void* q) {
        aligned_free64(q);
        note_free(bytes);
    });
}

struct Arena::State {
    std::mutex mu;
    std::multimap<size_t, void*> free_blocks;  // class size -> block
    size_t in_use = 0, cached = 0, peak = 0;
    bool alive = true;
};

Arena::Arena() : state_(std::make_shared<State>()) {}
Arena::~Arena() {
    std::lock_guard<std::mutex> lk(state_->mu);
    for (auto& kv : state_->free_blocks) aligned_free64(kv.second);
    state_->free_blocks.clear();
    state_->cached = 0;
    state_->alive = false;  // blocks still out are freed to the heap when they come back
}

std::shared_ptr<void> Arena::allocate(size_t bytes, size_t* granted) {
    size_t cls = size_class(bytes);
    void* p = nullptr;
    {
        std::lock_guard<std::mutex> lk(state_->mu);
        auto it = state_->free_blocks.find(cls);
        if (it != state_->free_blocks.end()) {
            p = it->second;
            state_->free_blocks.erase(it);
            state_->cached -= cls;
        }
    }
    if (!p) {
        try {
            p = aligned_alloc64(cls);
        } catch (const Error&) {
            trim();  // give cached blocks back and retry once
            p = aligned_alloc64(cls);
        }
    }
    {
        std::lock_guard<std::mutex> lk(state_->mu);
        state_->in_use += cls;
        if (state_->in_use > state_->peak) state_->peak = state_->in_use;
    }
    note_alloc(cls);
    if (granted) *granted = cls;
    std::shared_ptr<State> st = state_;
    return std::shared_ptr<void>(p, [st, cls](void* q) {
        note_free(cls);
        std::lock_guard<std::mutex> lk(st->mu);
        st->in_use -= cls;
        if (st->alive) {
            st->free_blocks.emplace(cls, q);
            st->cached += cls;
        } else {
            aligned_free64(q);
        }
    });
}

void Arena::trim() {
    std::lock_guard<std::mutex> lk(state_->mu);
    for (auto& kv : state_->free_blocks) aligned_free64(kv.second);
    state_->free_blocks.clear();
    state_->cached = 0;
}
size_t Arena::bytes_in_use() const { std::lock_guard<std::mutex> lk(state_->mu); return state_->in_use; }
size_t Arena::bytes_cached() const { std::lock_guard<std::mutex> lk(state_->mu); return state_->cached; }
size_t Arena::peak_bytes() const { std::lock_guard<std::mutex> lk(state_->mu); return state_->peak; }
void Arena::reset_peak() { std::lock_guard<std::mutex> lk(state_->mu); state_->peak = state_->in_use; }

ArenaScope::ArenaScope(Arena* a) : prev_(t_arena) { t_arena = a; }
ArenaScope::~ArenaScope() { t_arena = prev_; }
Arena* current_arena() { return t_arena; }

size_t tensor_bytes_live() { return g_live.load(); }
size_t tensor_bytes_peak() { return g_peak.load(); }
void tensor_bytes_reset_peak() { g_peak.store(g_live.load()); }

}  // namespace st2v
