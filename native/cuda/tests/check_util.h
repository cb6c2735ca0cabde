// Shared by the CUDA check tools (cuda_check, cuda_model_check).
#pragma once
#include <cstdlib>
#include <string>

namespace st2v::cuda_checks {

// Sets (value) or unsets (nullptr) an environment variable for one scope, restoring its previous state (exceptions
// included): the CUDA library reads its switches (ST2V_CUDA_ATTN, ST2V_CUDA_ATTN_BF16, ST2V_CUDA_ATTN_SCORE_BYTES)
// at every call.
class EnvScope {
  public:
    EnvScope(const char* var, const char* value) : var_(var) {
        if (const char* e = std::getenv(var)) had_ = true, prev_ = e;
        if (value) setenv(var, value, 1);
        else unsetenv(var);
    }
    ~EnvScope() {
        if (had_) setenv(var_, prev_.c_str(), 1);
        else unsetenv(var_);
    }
    EnvScope(const EnvScope&) = delete;
    EnvScope& operator=(const EnvScope&) = delete;

  private:
    const char* var_;
    std::string prev_;
    bool had_ = false;
};

}  // namespace st2v::cuda_checks
