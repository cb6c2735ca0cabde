// Shared N-API helpers. The files in native/napi/ are the only ones that include napi.h.
//
// - Each binding file registers its exports with a static Registrar, so adding a binding never edits
//   addon.cpp.
// - run_async() is the one way long work runs: on a libuv worker thread (never touching Napi), with any
//   st2v::Error / bad_alloc / std::exception captured and turned into a rejected Promise whose error has
//   a string `code` ("ERR_...") that lib/errors.ts turns into St2vError.
#pragma once
#include <napi.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "core/tensor.h"

namespace st2v::napi {

using InitFn = void (*)(Napi::Env env, Napi::Object exports);
struct Registrar {
    explicit Registrar(InitFn fn);
};
void run_registered(Napi::Env env, Napi::Object exports);

// A JS Error with `code` set.
Napi::Error make_error(Napi::Env env, Code code, const std::string& message);
// Call a function and convert a thrown st2v::Error / std::exception into a JS exception (sync bindings).
Napi::Value guard(Napi::Env env, const std::function<Napi::Value()>& fn);

// Runs `work` off the JS thread and resolves with `done(env)` (called on the JS thread).
// `keep` holds JS objects (e.g. input buffers) alive until the work completes.
Napi::Promise run_async(Napi::Env env, const char* name, std::function<void()> work,
                        std::function<Napi::Value(Napi::Env)> done, std::vector<Napi::Value> keep = {});

// Tensors cross as {data: TypedArray, shape: number[], dtype: "f32" | "f16" | "bf16" | "i64" | ...}.
// tensor_from_js copies the data (so the JS buffer may be reused at once); bad input -> ERR_INVALID_ARG.
Tensor tensor_from_js(const Napi::Value& v, const char* what);
Napi::Object tensor_to_js(Napi::Env env, const Tensor& t);

// Option readers (throw st2v::Error{kInvalidArgument} naming the option when the type is wrong).
double get_number(const Napi::Object& o, const char* key, double def);
bool get_bool(const Napi::Object& o, const char* key, bool def);
std::string get_string(const Napi::Object& o, const char* key, const std::string& def);

// Delivery accounting for events an async operation streams to JS through a thread-safe function (chunks,
// frames, progress): send() counts an event in flight (and drops it when the function is closing), the JS-side
// callback holds a Delivered while it runs, and the worker's WaitAll (a guard, so it also runs on errors) blocks
// until every event was delivered — the operation's promise settles only after its last event ran.
class PendingEvents {
  public:
    template <class Tsfn, class Ev>
    void send(Tsfn& tsfn, Ev* ev) {
        {
            std::lock_guard<std::mutex> lk(mu_);
            ++pending_;
        }
        if (tsfn.BlockingCall(ev) != napi_ok) {
            delete ev;
            done_one();
        }
    }
    void done_one() {
        std::lock_guard<std::mutex> lk(mu_);
        if (--pending_ == 0) cv_.notify_all();
    }
    void wait_all() {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return pending_ == 0; });
    }
    struct Delivered {
        PendingEvents* p;
        ~Delivered() { if (p) p->done_one(); }
    };
    struct WaitAll {
        PendingEvents* p;
        ~WaitAll() { p->wait_all(); }
    };

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    int pending_ = 0;
};

}  // namespace st2v::napi
