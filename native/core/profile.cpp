#include "core/profile.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

namespace st2v {
namespace {
std::atomic<bool> g_on{false};
std::mutex g_mu;
std::vector<ProfileRow> g_rows;
thread_local int t_depth = 0;
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

void set_cpu_profile(bool on) {
    std::lock_guard<std::mutex> lk(g_mu);
    if (on) g_rows.clear();
    g_on.store(on, std::memory_order_relaxed);
}
bool cpu_profile_on() { return g_on.load(std::memory_order_relaxed); }
std::vector<ProfileRow> cpu_profile() {
    std::lock_guard<std::mutex> lk(g_mu);
    std::vector<ProfileRow> v = g_rows;
    std::sort(v.begin(), v.end(), [](const ProfileRow& a, const ProfileRow& b) { return a.seconds > b.seconds; });
    return v;
}

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
    const double s = now_s() - t0_;
    try {
        std::lock_guard<std::mutex> lk(g_mu);
        auto it = std::find_if(g_rows.begin(), g_rows.end(), [&](const ProfileRow& r) { return r.name == name_; });
        if (it == g_rows.end()) it = g_rows.insert(g_rows.end(), ProfileRow{name_, 0, 0, 0, 0});
        it->calls += 1;
        it->seconds += s;
        it->flop += flop_;
        it->bytes += bytes_;
    } catch (...) {  // out of memory for one row: the profile misses it
    }
}

}  // namespace st2v
