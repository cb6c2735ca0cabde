// CPU emulation of the CUDA execution model and runtime API subset (see emu.h for what it is and is not).
#include "cuda/emu/emu.h"

#include <cuda_runtime.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define ST2V_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ST2V_EMU_ASAN 1
#endif
#endif
#ifdef ST2V_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
// x86-64: an assembly switch (no signal-mask syscalls). Elsewhere, or with ST2V_CUDA_EMU_UCONTEXT: ucontext.
#if defined(__x86_64__) && !defined(ST2V_CUDA_EMU_UCONTEXT)
#define ST2V_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

// ---- the built-in variables (one host thread runs the emulated threads, see emu.h) ----
uint3 threadIdx{0, 0, 0};
uint3 blockIdx{0, 0, 0};
dim3 blockDim{1, 1, 1};
dim3 gridDim{1, 1, 1};

// Bounds of the static __shared__ variables of this module (emu.h puts them in this section; the linker defines
// the symbols when the section exists).
extern "C" char __start_st2v_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_st2v_emu_shared[] __attribute__((weak, visibility("hidden")));

#if defined(ST2V_EMU_ASM_SWITCH)
// st2v_emu_switch(save, load): saves the callee-saved registers on the current stack, stores the stack pointer in
// *save, switches to the stack `load` and restores its registers. A new fiber's stack is prepared so that the
// first switch "returns" into st2v_emu_trampoline, which calls r13(r12).
extern "C" void st2v_emu_switch(void** save, void* load);
extern "C" void st2v_emu_trampoline();
asm(R"(
    .text
    .globl st2v_emu_switch
    .hidden st2v_emu_switch
    .type st2v_emu_switch,@function
st2v_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    popq %rax
    jmpq *%rax
    .size st2v_emu_switch, .-st2v_emu_switch

    .globl st2v_emu_trampoline
    .hidden st2v_emu_trampoline
    .type st2v_emu_trampoline,@function
st2v_emu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size st2v_emu_trampoline, .-st2v_emu_trampoline
)");
#endif

namespace st2v::cuda_emu {
namespace {

// ------------------------------------------------------------------------------------------------------------
// errors: CUDA's "last error" (cleared by cudaGetLastError) plus the emulation's detailed message for it
thread_local cudaError_t t_last = cudaSuccess;
thread_local cudaError_t t_detail_code = cudaSuccess;
thread_local std::string t_detail;
thread_local std::string t_detail_text;

cudaError_t set_error(cudaError_t e, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
cudaError_t set_error(cudaError_t e, const char* fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t_last = e;
    t_detail_code = e;
    t_detail = buf;
    std::fprintf(stderr, "[cuda_emu] %s\n", buf);
    if (const char* a = std::getenv("ST2V_CUDA_EMU_ABORT"); a && *a == '1') std::abort();
    return e;
}

// ------------------------------------------------------------------------------------------------------------
// device memory: host memory, registered so that copies and kernel pointer arguments can be checked
std::mutex g_mem_mu;
std::map<uintptr_t, size_t> g_allocs;  // base -> bytes
size_t g_allocated = 0;
constexpr size_t kFakeTotal = size_t(16) << 30;

bool in_device(const void* p, size_t bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> lock(g_mem_mu);
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return false;
    --it;
    return a >= it->first && a - it->first <= it->second && bytes <= it->second - (a - it->first);
}

// ------------------------------------------------------------------------------------------------------------
// fibers
#ifdef ST2V_EMU_ASAN
constexpr size_t kStackBytes = size_t(512) << 10;
#else
constexpr size_t kStackBytes = size_t(128) << 10;
#endif

struct Fiber {
    char* lo = nullptr;  // usable stack [lo, lo + kStackBytes); a PROT_NONE guard page below lo
    size_t skew = 0;     // the top is lowered by this much so that the fibers' hot frames fall in different cache sets
    void* sp = nullptr;
#if !defined(ST2V_EMU_ASM_SWITCH)
    ucontext_t uc;
#endif
#ifdef ST2V_EMU_ASAN
    void* fake = nullptr;
#endif
};
std::vector<Fiber*>& g_fibers = *new std::vector<Fiber*>;  // never destroyed: fibers live as long as the process
void* g_main_sp = nullptr;
#if !defined(ST2V_EMU_ASM_SWITCH)
ucontext_t g_main_uc;
#endif
#ifdef ST2V_EMU_ASAN
void* g_main_fake = nullptr;
const void* g_main_bottom = nullptr;
size_t g_main_size = 0;
#endif

enum State : uint8_t { kRun, kAtBlockBarrier, kAtWarpOp, kDone };

struct Launch {
    const char* name = nullptr;
    void (*fn)(void*) = nullptr;
    void* ctx = nullptr;
    unsigned n = 0;          // threads per block
    int cur = -1;            // running thread
    std::vector<uint8_t> state;
    std::vector<unsigned> mask;
    std::vector<uint32_t> ops;        // warp ops done per thread (selects the slot buffer)
    std::vector<uint64_t> slots;      // per warp: 2 buffers x 32 lanes
    std::vector<uint3> tid;
    unsigned char* smem = nullptr;    // dynamic shared memory (+ guard bytes)
    size_t smem_bytes = 0;
    bool failed = false;
    std::string fault;
};
Launch* g_launch = nullptr;
std::mutex g_launch_mu;
constexpr size_t kGuard = 256;
constexpr unsigned char kGuardByte = 0xa5;

Fiber* fiber(unsigned i) {
    while (g_fibers.size() <= i) {
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m == MAP_FAILED) {
            std::fprintf(stderr, "[cuda_emu] cannot map a %zu KiB fiber stack\n", kStackBytes >> 10);
            std::abort();
        }
        mprotect(m, page, PROT_NONE);  // stack overflow -> SIGSEGV instead of silent corruption
        Fiber* f = new Fiber;
        f->lo = static_cast<char*>(m) + page;
        f->skew = (g_fibers.size() * 320) % 4096;
        g_fibers.push_back(f);
    }
    return g_fibers[i];
}

void fiber_main(void*);

void fiber_prepare(Fiber* f) {
#if defined(ST2V_EMU_ASM_SWITCH)
    uintptr_t top = (reinterpret_cast<uintptr_t>(f->lo) + kStackBytes - f->skew) & ~uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top - 56);  // 7 slots; after popping them rsp == top (16-aligned)
    sp[0] = nullptr;                                  // r15
    sp[1] = nullptr;                                  // r14
    sp[2] = reinterpret_cast<void*>(&fiber_main);     // r13: the function
    sp[3] = nullptr;                                  // r12: its argument
    sp[4] = nullptr;                                  // rbx
    sp[5] = nullptr;                                  // rbp
    sp[6] = reinterpret_cast<void*>(&st2v_emu_trampoline);
    f->sp = sp;
#else
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->lo;
    f->uc.uc_stack.ss_size = kStackBytes - f->skew;
    f->uc.uc_link = nullptr;
    makecontext(&f->uc, reinterpret_cast<void (*)()>(&fiber_main), 0);
#endif
}

// scheduler -> fiber
void resume(Fiber* f) {
#ifdef ST2V_EMU_ASAN
    __sanitizer_start_switch_fiber(&g_main_fake, f->lo, kStackBytes);
#endif
#if defined(ST2V_EMU_ASM_SWITCH)
    st2v_emu_switch(&g_main_sp, f->sp);
#else
    swapcontext(&g_main_uc, &f->uc);
#endif
#ifdef ST2V_EMU_ASAN
    __sanitizer_finish_switch_fiber(g_main_fake, nullptr, nullptr);
#endif
}

// fiber -> scheduler; `exiting`: this fiber is never resumed
void yield_to_main(bool exiting) {
    Fiber* f = g_fibers[static_cast<size_t>(g_launch->cur)];
#ifdef ST2V_EMU_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &f->fake, g_main_bottom, g_main_size);
#endif
#if defined(ST2V_EMU_ASM_SWITCH)
    st2v_emu_switch(&f->sp, g_main_sp);
#else
    swapcontext(&f->uc, &g_main_uc);
#endif
#ifdef ST2V_EMU_ASAN
    __sanitizer_finish_switch_fiber(f->fake, nullptr, nullptr);
#endif
    (void)exiting;
}

void fiber_main(void*) {
#ifdef ST2V_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g_main_bottom, &g_main_size);
#endif
    Launch& L = *g_launch;
    L.fn(L.ctx);
    L.state[static_cast<size_t>(L.cur)] = kDone;
    yield_to_main(true);
    __builtin_trap();  // never resumed
}

Launch& current(const char* what) {
    if (!g_launch || g_launch->cur < 0) {
        std::fprintf(stderr, "[cuda_emu] %s called outside a kernel\n", what);
        std::abort();
    }
    return *g_launch;
}

void describe_thread(const Launch& L, unsigned t, char* buf, size_t n) {
    const uint3 v = L.tid[t];
    std::snprintf(buf, n, "thread (%u,%u,%u) = linear %u (warp %u lane %u)", v.x, v.y, v.z, t, t / 32, t % 32);
}

// Fails the launch from the scheduler side (no fiber to abandon).
void sched_fault(Launch& L, const std::string& msg) {
    if (L.failed) return;
    L.failed = true;
    L.fault = msg;
}

const char* state_name(uint8_t s) {
    switch (s) {
        case kRun: return "running";
        case kAtBlockBarrier: return "waiting at __syncthreads";
        case kAtWarpOp: return "waiting at a warp op";
        default: return "exited";
    }
}

// After a round (every thread exited or waits): releases complete warp groups, else a complete block barrier.
// Returns false when nothing can be released (the block is done, or it deadlocked: L.failed says which).
bool release(Launch& L) {
    const unsigned n = L.n;
    unsigned done = 0, at_block = 0, at_warp = 0;
    for (unsigned t = 0; t < n; ++t) {
        done += L.state[t] == kDone;
        at_block += L.state[t] == kAtBlockBarrier;
        at_warp += L.state[t] == kAtWarpOp;
    }
    if (done == n) return false;
    bool released = false;
    char a[96], b[96];
    if (at_warp) {
        for (unsigned w = 0; w * 32 < n; ++w) {
            const unsigned base = w * 32, lanes = std::min(32u, n - base);
            for (unsigned l = 0; l < lanes; ++l) {
                const unsigned t = base + l;
                if (L.state[t] != kAtWarpOp) continue;
                const unsigned m = L.mask[t];
                if (!((m >> l) & 1u)) {
                    describe_thread(L, t, a, sizeof a);
                    sched_fault(L, std::string(a) + ": warp op with a mask that does not name the calling lane");
                    return false;
                }
                for (unsigned k = 0; k < 32; ++k) {
                    if (!((m >> k) & 1u)) continue;
                    char msg[512];
                    if (k >= lanes) {
                        describe_thread(L, t, a, sizeof a);
                        std::snprintf(msg, sizeof msg,
                                      "%s: warp op mask 0x%08x names lane %u, which does not exist (block of %u "
                                              "threads: "
                                      "the last warp has %u lanes)", a, m, k, n, lanes);
                        sched_fault(L, msg);
                        return false;
                    }
                    const unsigned u = base + k;
                    if (L.state[u] != kAtWarpOp || L.mask[u] != m || L.ops[u] != L.ops[t]) {
                        describe_thread(L, t, a, sizeof a);
                        describe_thread(L, u, b, sizeof b);
                        if (L.state[u] == kAtWarpOp)
                            std::snprintf(msg, sizeof msg,
                                          "warp op deadlock: %s waits with mask 0x%08x (its warp op #%u) but %s "
                                                  "waits with "
                                          "mask 0x%08x (its warp op #%u)", a, m, L.ops[t], b, L.mask[u], L.ops[u]);
                        else
                            std::snprintf(msg, sizeof msg, "warp op deadlock: %s waits with mask 0x%08x but %s is %s",
                                    a, m,
                                          b, state_name(L.state[u]));
                        sched_fault(L, msg);
                        return false;
                    }
                }
                for (unsigned k = 0; k < 32; ++k)
                    if ((m >> k) & 1u) L.state[base + k] = kRun;
                released = true;
            }
        }
        if (released) return true;
    }
    if (at_block == n) {
        for (unsigned t = 0; t < n; ++t) L.state[t] = kRun;
        return true;
    }
    // deadlock: say who waits where
    unsigned first_done = n, first_block = n;
    for (unsigned t = 0; t < n; ++t) {
        if (L.state[t] == kDone && first_done == n) first_done = t;
        if (L.state[t] == kAtBlockBarrier && first_block == n) first_block = t;
    }
    char msg[512];
    if (first_block < n && first_done < n) {
        describe_thread(L, first_block, a, sizeof a);
        describe_thread(L, first_done, b, sizeof b);
        std::snprintf(msg, sizeof msg,
                      "__syncthreads deadlock: %u of %u threads wait at a barrier (first: %s) while %u exited "
                              "(first: %s) "
                      "- a barrier inside a branch or after an early return", at_block, n, a, done, b);
    } else {
        std::snprintf(msg, sizeof msg, "deadlock: %u threads at __syncthreads, %u at warp ops, %u exited (block of %u)",
                      at_block, at_warp, done, n);
    }
    sched_fault(L, msg);
    return false;
}

std::mutex g_obj_mu;
std::set<cudaStream_t> g_streams;
std::map<cudaEvent_t, double> g_events;  // event -> recorded time (ms since the first call), < 0: not recorded
std::map<const void*, int> g_max_dyn_smem;
int g_device = 0;

constexpr size_t kSmemDefault = 48 << 10, kSmemOptin = 232448;

bool valid_stream(cudaStream_t s) {
    if (!s) return true;
    std::lock_guard<std::mutex> lock(g_obj_mu);
    return g_streams.count(s) != 0;
}

double now_ms() {
    static const auto t0 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// device-side entry points (emu.h)

void block_barrier() {
    Launch& L = current("__syncthreads");
    L.state[static_cast<size_t>(L.cur)] = kAtBlockBarrier;
    yield_to_main(false);
}

const uint64_t* warp_exchange(unsigned mask, uint64_t value) {
    Launch& L = current("a warp intrinsic");
    const unsigned t = static_cast<unsigned>(L.cur), w = t / 32, lane = t % 32;
    const uint32_t op = L.ops[t];
    uint64_t* buf = &L.slots[(static_cast<size_t>(w) * 2 + (op & 1u)) * 32];
    buf[lane] = value;
    L.state[t] = kAtWarpOp;
    L.mask[t] = mask;
    yield_to_main(false);
    L.ops[t] = op + 1;
    return buf;
}

void kernel_fault(const char* fmt, ...) {
    Launch& L = current("kernel_fault");
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char who[96];
    describe_thread(L, static_cast<unsigned>(L.cur), who, sizeof who);
    L.failed = true;
    L.fault = std::string(who) + ": " + buf;
    L.state[static_cast<size_t>(L.cur)] = kDone;
    yield_to_main(true);
    __builtin_trap();
}

void* dynamic_smem() {
    Launch& L = current("dynamic shared memory");
    return L.smem;
}

unsigned lane_id() { return static_cast<unsigned>(current("a warp intrinsic").cur) % 32; }

unsigned warp_lanes() {
    Launch& L = current("__activemask");
    const unsigned base = static_cast<unsigned>(L.cur) / 32 * 32, lanes = std::min(32u, L.n - base);
    return lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
}

bool is_device_range(const void* p, size_t bytes) { return in_device(p, bytes); }

void bad_kernel_pointer(const char* name, int index, const void* p) {
    set_error(cudaErrorLaunchFailure,
              "%s: pointer argument #%d (%p) is not inside any cudaMalloc allocation (host memory passed to a kernel "
              "is an illegal address on a GPU)", name ? name : "kernel", index, p);
}

void launch_erased(const char* name, const void* fn_id, dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
                   void (*fn)(void*), void* ctx) {
    const char* kname = name ? name : "kernel";
    const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nthreads == 0) {
        set_error(cudaErrorInvalidConfiguration, "%s: empty launch grid (%u,%u,%u) block (%u,%u,%u)", kname, grid.x,
                  grid.y, grid.z, block.x, block.y, block.z);
        return;
    }
    if (nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
        set_error(cudaErrorInvalidConfiguration,
                "%s: block (%u,%u,%u) = %llu threads exceeds the limits (1024 threads, "
                  "1024 x 1024 x 64)", kname, block.x, block.y, block.z, (unsigned long long)nthreads);
        return;
    }
    if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        set_error(cudaErrorInvalidConfiguration, "%s: grid (%u,%u,%u) exceeds the limits (2^31-1 x 65535 x 65535)",
                  kname, grid.x, grid.y, grid.z);
        return;
    }
    if (smem_bytes > kSmemDefault) {
        int allowed = 0;
        {
            std::lock_guard<std::mutex> lock(g_obj_mu);
            auto it = fn_id ? g_max_dyn_smem.find(fn_id) : g_max_dyn_smem.end();
            if (it != g_max_dyn_smem.end()) allowed = it->second;
        }
        if (smem_bytes > kSmemOptin || static_cast<int64_t>(smem_bytes) > allowed) {
            set_error(cudaErrorInvalidValue,
                      "%s: %zu bytes of dynamic shared memory; above 48 KiB a launch needs "
                      "cudaFuncSetAttribute(MaxDynamicSharedMemorySize) first (set: %d; device limit %zu)",
                      kname, smem_bytes, allowed, kSmemOptin);
            return;
        }
    }
    if (!valid_stream(stream)) {
        set_error(cudaErrorInvalidResourceHandle, "%s: launched on an unknown or destroyed stream %p", kname,
                  static_cast<void*>(stream));
        return;
    }
    std::unique_lock<std::mutex> lock(g_launch_mu, std::try_to_lock);
    if (!lock.owns_lock()) {
        if (g_launch && g_launch->cur >= 0) {
            set_error(cudaErrorLaunchFailure, "%s launched from inside a kernel (dynamic parallelism is not emulated)",
                      kname);
            return;
        }
        lock.lock();
    }
    Launch L;
    L.name = name;
    L.fn = fn;
    L.ctx = ctx;
    L.n = static_cast<unsigned>(nthreads);
    L.state.assign(L.n, kRun);
    L.mask.assign(L.n, 0);
    L.ops.assign(L.n, 0);
    L.slots.assign(static_cast<size_t>((L.n + 31) / 32) * 64, 0);
    L.tid.resize(L.n);
    for (unsigned t = 0; t < L.n; ++t)
        L.tid[t] = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
#ifdef ST2V_EMU_ASAN
    const size_t guard = 0;  // ASan: an exact-size allocation, any access past it is reported
#else
    const size_t guard = kGuard;
#endif
    L.smem_bytes = smem_bytes;
    unsigned char* smem = static_cast<unsigned char*>(std::malloc(smem_bytes + guard));
    L.smem = smem;
    for (unsigned t = 0; t < L.n; ++t) fiber(t);
    Launch* outer = g_launch;
    g_launch = &L;
    gridDim = grid;
    blockDim = block;
    unsigned bx = 0, by = 0, bz = 0;
    for (bz = 0; bz < grid.z && !L.failed; ++bz)
        for (by = 0; by < grid.y && !L.failed; ++by)
            for (bx = 0; bx < grid.x && !L.failed; ++bx) {
                blockIdx = uint3{bx, by, bz};
                if (smem_bytes) std::memset(smem, 0xff, smem_bytes);  // NaN: reads of unwritten smem show
                char *shared_lo = +__start_st2v_emu_shared, *shared_hi = +__stop_st2v_emu_shared;
                if (shared_lo && shared_hi > shared_lo)
                    std::memset(shared_lo, 0xff, static_cast<size_t>(shared_hi - shared_lo));
                std::memset(smem + smem_bytes, kGuardByte, guard);
                for (unsigned t = 0; t < L.n; ++t) {
                    fiber_prepare(g_fibers[t]);
                    L.state[t] = kRun;
                    L.ops[t] = 0;
                }
                for (;;) {
                    // Odd blocks run their threads in reverse order between barriers, so a missing barrier
                    // between one thread's shared-memory write and another's read gives a wrong result in one
                    // of the two orders (whichever direction the data flows) and cuda_check sees it.
                    const bool reverse = ((bx + by + bz) & 1u) != 0;
                    for (unsigned i = 0; i < L.n && !L.failed; ++i) {
                        const unsigned t = reverse ? L.n - 1 - i : i;
                        if (L.state[t] != kRun) continue;
                        L.cur = static_cast<int>(t);
                        threadIdx = L.tid[t];
                        resume(g_fibers[t]);
                    }
                    L.cur = -1;
                    if (L.failed || !release(L)) break;
                }
                for (size_t i = 0; i < guard && !L.failed; ++i)
                    if (smem[smem_bytes + i] != kGuardByte) {
                        char msg[256];
                        std::snprintf(msg, sizeof msg, "wrote past its dynamic shared memory (%zu bytes requested; "
                                      "guard byte %zu changed)", smem_bytes, i);
                        sched_fault(L, msg);
                    }
                if (L.failed) {
                    char where[160];
                    std::snprintf(where, sizeof where, " [block (%u,%u,%u) of grid (%u,%u,%u), block (%u,%u,%u)]", bx,
                            by,
                                  bz, grid.x, grid.y, grid.z, block.x, block.y, block.z);
                    L.fault += where;
                }
            }
    g_launch = outer;
    std::free(smem);
    if (L.failed) {
#ifdef ST2V_EMU_ASAN
        for (unsigned t = 0; t < L.n; ++t) __asan_unpoison_memory_region(g_fibers[t]->lo, kStackBytes);
#endif
        set_error(cudaErrorLaunchFailure, "%s: %s", kname, L.fault.c_str());
    }
}

}  // namespace st2v::cuda_emu

// ---------------------------------------------------------------------------------------------------------------
// runtime API
using namespace st2v::cuda_emu;

extern "C" {

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
#define N(x) case x: return #x;
        N(cudaSuccess) N(cudaErrorInvalidValue) N(cudaErrorMemoryAllocation) N(cudaErrorInitializationError)
        N(cudaErrorInvalidConfiguration) N(cudaErrorInvalidMemcpyDirection) N(cudaErrorInsufficientDriver)
        N(cudaErrorDevicesUnavailable) N(cudaErrorInvalidDeviceFunction) N(cudaErrorNoDevice)
        N(cudaErrorInvalidDevice) N(cudaErrorNoKernelImageForDevice) N(cudaErrorECCUncorrectable)
        N(cudaErrorUnsupportedPtxVersion) N(cudaErrorInvalidResourceHandle) N(cudaErrorNotReady)
        N(cudaErrorIllegalAddress) N(cudaErrorLaunchOutOfResources) N(cudaErrorAssert) N(cudaErrorHardwareStackError)
        N(cudaErrorIllegalInstruction) N(cudaErrorMisalignedAddress) N(cudaErrorInvalidAddressSpace)
        N(cudaErrorInvalidPc) N(cudaErrorLaunchFailure) N(cudaErrorSystemDriverMismatch)
        N(cudaErrorCompatNotSupportedOnDevice) N(cudaErrorUnknown)
#undef N
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
    const char* base = "unknown error";
    switch (e) {
        case cudaSuccess: base = "no error"; break;
        case cudaErrorInvalidValue: base = "invalid argument"; break;
        case cudaErrorMemoryAllocation: base = "out of memory"; break;
        case cudaErrorInvalidConfiguration: base = "invalid configuration argument"; break;
        case cudaErrorInvalidMemcpyDirection: base = "invalid copy direction for memcpy"; break;
        case cudaErrorInvalidDevice: base = "invalid device ordinal"; break;
        case cudaErrorInvalidResourceHandle: base = "invalid resource handle"; break;
        case cudaErrorNotReady: base = "device not ready"; break;
        case cudaErrorIllegalAddress: base = "an illegal memory access was encountered"; break;
        case cudaErrorLaunchFailure: base = "unspecified launch failure"; break;
        default: break;
    }
    if (e != cudaSuccess && e == t_detail_code && !t_detail.empty()) {
        t_detail_text = std::string(base) + " [CUDA emulation: " + t_detail + "]";
        return t_detail_text.c_str();
    }
    return base;
}

cudaError_t cudaGetLastError(void) {
    const cudaError_t e = t_last;
    t_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return t_last; }

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return set_error(cudaErrorInvalidValue, "cudaGetDeviceCount: null output");
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
    if (device != 0) return set_error(cudaErrorInvalidDevice, "cudaSetDevice(%d): the emulation has one device",
            device);
    g_device = device;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
    if (!device) return set_error(cudaErrorInvalidValue, "cudaGetDevice: null output");
    *device = g_device;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
    if (!p) return set_error(cudaErrorInvalidValue, "cudaGetDeviceProperties: null output");
    if (device != 0) return set_error(cudaErrorInvalidDevice, "cudaGetDeviceProperties(%d): one device", device);
    std::memset(p, 0, sizeof *p);
    // A fake device: the limits are an H100's (sm_90), so launch-geometry checks match the GPU machines.
    std::snprintf(p->name, sizeof p->name, "CPU emulation of CUDA (st2v cuda_emu; sm_90 limits, not a GPU)");
    p->totalGlobalMem = kFakeTotal;
    p->sharedMemPerBlock = kSmemDefault;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9, p->minor = 0;
    p->textureAlignment = 512;
    p->multiProcessorCount = 132;
    p->concurrentKernels = 1;
    p->unifiedAddressing = 1;
    p->l2CacheSize = 50 << 20;
    p->maxThreadsPerMultiProcessor = 2048;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerMultiprocessor = 65536;
    p->sharedMemPerBlockOptin = kSmemOptin;
    p->maxBlocksPerMultiProcessor = 32;
    p->reservedSharedMemPerBlock = 1024;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
    if (!v) return set_error(cudaErrorInvalidValue, "cudaDriverGetVersion: null output");
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
    if (!v) return set_error(cudaErrorInvalidValue, "cudaRuntimeGetVersion: null output");
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    if (!free_bytes || !total_bytes) return set_error(cudaErrorInvalidValue, "cudaMemGetInfo: null output");
    std::lock_guard<std::mutex> lock(g_mem_mu);
    *total_bytes = kFakeTotal;
    *free_bytes = g_allocated < kFakeTotal ? kFakeTotal - g_allocated : 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
    if (!p) return set_error(cudaErrorInvalidValue, "cudaMalloc: null output");
    *p = nullptr;
    if (bytes == 0) return cudaSuccess;
    void* m = nullptr;
    if (posix_memalign(&m, 256, bytes) != 0 || !m)
        return set_error(cudaErrorMemoryAllocation, "cudaMalloc(%zu): host allocation failed", bytes);
    std::memset(m, 0xff, bytes);  // uninitialised device memory reads as NaN
    std::lock_guard<std::mutex> lock(g_mem_mu);
    g_allocs[reinterpret_cast<uintptr_t>(m)] = bytes;
    g_allocated += bytes;
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
    if (!p) return cudaSuccess;
    bool found = false;
    {
        std::lock_guard<std::mutex> lock(g_mem_mu);
        auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
        if (it != g_allocs.end()) {
            found = true;
            g_allocated -= it->second;
            g_allocs.erase(it);
        }
    }
    if (!found) return set_error(cudaErrorInvalidValue, "cudaFree(%p): not the start of a cudaMalloc allocation", p);
    std::free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (!value) return set_error(cudaErrorInvalidValue, "cudaDeviceGetAttribute: null output");
    if (device != 0) return set_error(cudaErrorInvalidDevice, "cudaDeviceGetAttribute(%d): one device", device);
    *value = attr == cudaDevAttrMemoryPoolsSupported ? 1 : 0;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
    static int token;
    if (!pool) return set_error(cudaErrorInvalidValue, "cudaDeviceGetDefaultMemPool: null output");
    if (device != 0) return set_error(cudaErrorInvalidDevice, "cudaDeviceGetDefaultMemPool(%d): one device", device);
    *pool = reinterpret_cast<cudaMemPool_t>(&token);
    return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr, void* value) {
    if (!pool || !value) return set_error(cudaErrorInvalidValue, "cudaMemPoolSetAttribute: null pool or value");
    return cudaSuccess;
}
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, size_t) {
    if (!pool) return set_error(cudaErrorInvalidValue, "cudaMemPoolTrimTo: null pool");
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
    if (!p) return set_error(cudaErrorInvalidValue, "cudaMallocHost: null output");
    *p = std::malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation, "cudaMallocHost(%zu) failed", bytes);
}
cudaError_t cudaFreeHost(void* p) {
    std::free(p);
    return cudaSuccess;
}

static cudaError_t check_copy(const char* what, void* dst, size_t dst_span, const void* src, size_t src_span,
                              cudaMemcpyKind kind) {
    const bool dd = in_device(dst, dst_span), sd = in_device(src, src_span);
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost) return cudaSuccess;
    if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
        return set_error(cudaErrorInvalidMemcpyDirection, "%s: unknown direction %d", what, static_cast<int>(kind));
    if (dst_dev && !dd)
        return set_error(cudaErrorInvalidValue, "%s: destination %p (+%zu bytes) is not inside a cudaMalloc allocation",
                         what, dst, dst_span);
    if (src_dev && !sd)
        return set_error(cudaErrorInvalidValue, "%s: source %p (+%zu bytes) is not inside a cudaMalloc allocation",
                what,
                         src, src_span);
    if (!dst_dev && in_device(dst, 0))
        return set_error(cudaErrorInvalidValue, "%s: destination %p is device memory but the direction says host", what,
                         dst);
    if (!src_dev && in_device(src, 0))
        return set_error(cudaErrorInvalidValue, "%s: source %p is device memory but the direction says host", what,
                src);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    if (cudaError_t e = check_copy("cudaMemcpy", dst, bytes, src, bytes, kind)) return e;
    std::memcpy(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: unknown stream");
    if (bytes == 0) return cudaSuccess;
    if (cudaError_t e = check_copy("cudaMemcpyAsync", dst, bytes, src, bytes, kind)) return e;
    std::memcpy(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
    if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemcpy2DAsync: unknown stream");
    if (width == 0 || height == 0) return cudaSuccess;
    if (dpitch < width || spitch < width)
        return set_error(cudaErrorInvalidValue, "cudaMemcpy2DAsync: pitch (%zu, %zu) < width %zu", dpitch, spitch,
                width);
    if (cudaError_t e = check_copy("cudaMemcpy2DAsync", dst, dpitch * (height - 1) + width, src,
                                   spitch * (height - 1) + width, kind))
        return e;
    for (size_t r = 0; r < height; ++r)
        std::memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
    return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    if (!in_device(p, bytes))
        return set_error(cudaErrorInvalidValue, "cudaMemset: %p (+%zu bytes) is not inside a cudaMalloc allocation", p,
                         bytes);
    std::memset(p, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
    if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: unknown stream");
    return cudaMemset(p, value, bytes);
}
cudaError_t cudaMemset2DAsync(void* p, size_t pitch, int value, size_t width, size_t height, cudaStream_t s) {
    if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemset2DAsync: unknown stream");
    if (width == 0 || height == 0) return cudaSuccess;
    if (pitch < width) return set_error(cudaErrorInvalidValue, "cudaMemset2DAsync: pitch %zu < width %zu", pitch,
            width);
    if (!in_device(p, pitch * (height - 1) + width))
        return set_error(cudaErrorInvalidValue,
                "cudaMemset2DAsync: %p (%zu rows of %zu bytes, pitch %zu) is not inside "
                         "a cudaMalloc allocation", p, height, width, pitch);
    for (size_t r = 0; r < height; ++r) std::memset(static_cast<char*>(p) + r * pitch, value, width);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
    if (!s) return set_error(cudaErrorInvalidValue, "cudaStreamCreate: null output");
    *s = reinterpret_cast<cudaStream_t>(new char[1]);
    std::lock_guard<std::mutex> lock(g_obj_mu);
    g_streams.insert(*s);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    bool found = false;
    {
        std::lock_guard<std::mutex> lock(g_obj_mu);
        found = s && g_streams.erase(s);
    }
    if (!found) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamDestroy(%p): unknown stream", (void*)s);
    delete[] reinterpret_cast<char*>(s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: unknown stream");
    return cudaSuccess;  // everything ran when it was issued
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
    if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: unknown stream");
    std::lock_guard<std::mutex> lock(g_obj_mu);
    if (!g_events.count(e)) t_last = cudaErrorInvalidResourceHandle;
    return g_events.count(e) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
    if (!e) return set_error(cudaErrorInvalidValue, "cudaEventCreate: null output");
    *e = reinterpret_cast<cudaEvent_t>(new char[1]);
    std::lock_guard<std::mutex> lock(g_obj_mu);
    g_events[*e] = -1.0;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    std::lock_guard<std::mutex> lock(g_obj_mu);
    if (!g_events.erase(e)) {
        t_last = cudaErrorInvalidResourceHandle;
        return cudaErrorInvalidResourceHandle;
    }
    delete[] reinterpret_cast<char*>(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown stream");
    std::lock_guard<std::mutex> lock(g_obj_mu);
    auto it = g_events.find(e);
    if (it == g_events.end()) {
        t_last = cudaErrorInvalidResourceHandle;
        return cudaErrorInvalidResourceHandle;
    }
    it->second = now_ms();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    std::lock_guard<std::mutex> lock(g_obj_mu);
    return g_events.count(e) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return cudaEventSynchronize(e); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    std::lock_guard<std::mutex> lock(g_obj_mu);
    auto ia = g_events.find(a), ib = g_events.find(b);
    if (!ms || ia == g_events.end() || ib == g_events.end()) return cudaErrorInvalidResourceHandle;
    if (ia->second < 0 || ib->second < 0) return cudaErrorInvalidResourceHandle;
    *ms = static_cast<float>(ib->second - ia->second);
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    if (!func) return set_error(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute: null function");
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || static_cast<size_t>(value) > kSmemOptin)
            return set_error(cudaErrorInvalidValue,
                             "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, %d): above the device's %zu bytes",
                                     value,
                             kSmemOptin);
        std::lock_guard<std::mutex> lock(g_obj_mu);
        g_max_dyn_smem[func] = value;
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
    return set_error(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute %d is not emulated",
            static_cast<int>(attr));
}

}  // extern "C"
