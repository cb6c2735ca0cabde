#include "core/profile.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

namespace st2v {
void ProfileTable::clear() {
    std::lock_guard<std::mutex> lk(mu_);
    rows_.clear();
}
void ProfileTable::add(const char* name, double seconds, double flop, double bytes) noexcept {
    try {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = std::find_if(rows_.begin(), rows_.end(), [&](const ProfileRow& r) { return r.name == name; });
        if (it == rows_.end()) it = rows_.insert(rows_.end(), ProfileRow{name, 0, 0, 0, 0});
        it->calls += 1;
        it->seconds += seconds;
        it->flop += flop;
        it->bytes += bytes;
    } catch (...) {  // out of memory for one row: the table misses it
    }
}
std::vector<ProfileRow> ProfileTable::rows() const {
    std::vector<ProfileRow> v;
    {
        std::lock_guard<std::mutex> lk(mu_);
        v = rows_;
    }
    std::sort(v.begin(), v.end(), [](const ProfileRow& a, const ProfileRow& b) { return a.seconds > b.seconds; });
    return v;
}

namespace {
std::atomic<bool> g_on{false};
ProfileTable g_table;
thread_local int t_depth = 0;
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

void set_cpu_profile(bool on) {
    if (on) g_table.clear();
    g_on.store(on, std::memory_order_relaxed);
}
bool cpu_profile_on() { return g_on.load(std::memory_order_relaxed); }
std::vector<ProfileRow> cpu_profile() { return g_table.rows(); }

void ProfScope::start(const char* name, double flop, double bytes) {
    counted_ = true;
    if (t_depth++ > 0) return;
    name_ = name;
    flop_ = flop;
    bytes_ = bytes;
    t0_ = now_s();
}

void ProfScope::stop() noexcept {
    --t_depth;
    if (!name_) return;
    g_table.add(name_, now_s() - t0_, flop_, bytes_);
}

}  // namespace st2v
