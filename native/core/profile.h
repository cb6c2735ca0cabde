// CPU op profile: where the time goes, op by op (`npm run bench -- step --profile`, `st2v generate --profile`).
//
// Each public op of ops/ops.h (and the Tensor copies of core/tensor.h) opens a ProfScope at its entry. While the
// profile is on, the outermost scope of each thread adds its wall time, its FLOPs (convolutions, linear layers,
// attention products; 0 elsewhere) and the bytes it reads and writes to a table keyed by the scope's name; scopes
// nested inside another (a layout copy inside a convolution) count in the outermost one only, so the rows add up
// to the time spent inside ops. Off (the default), a scope costs one relaxed atomic load.
// set_cpu_profile(true) clears the table. Names are static strings (string literals). The table is process-wide:
// while it is on, the ops of every thread land in it (a second model running at the same time would mix in).
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace st2v {

struct ProfileRow {
    std::string name;
    int64_t calls = 0;
    double seconds = 0, flop = 0, bytes = 0;
};

// Rows by name, thread-safe. The CPU op profile below keeps one; the CUDA backend's device-op profile
// (backend/backend.h) keeps another.
class ProfileTable {
  public:
    void clear();
    // Adds one call; never throws (out of memory for a new row: the table misses it).
    void add(const char* name, double seconds, double flop, double bytes) noexcept;
    std::vector<ProfileRow> rows() const;  // by seconds, descending

  private:
    mutable std::mutex mu_;
    std::vector<ProfileRow> rows_;
};

void set_cpu_profile(bool on);
bool cpu_profile_on();
std::vector<ProfileRow> cpu_profile();  // by seconds, descending

class ProfScope {
  public:
    explicit ProfScope(const char* name, double flop = 0, double bytes = 0) {
        if (cpu_profile_on()) start(name, flop, bytes);
    }
    ~ProfScope() {
        if (counted_) stop();
    }
    ProfScope(const ProfScope&) = delete;
    ProfScope& operator=(const ProfScope&) = delete;

  private:
    void start(const char* name, double flop, double bytes);
    void stop() noexcept;
    const char* name_ = nullptr;  // null: not recording (nested in another scope of this thread)
    bool counted_ = false;        // this scope holds one level of the thread's nesting depth
    double flop_ = 0, bytes_ = 0, t0_ = 0;
};

}  // namespace st2v
