// Golden verification cases of issue 6 (VAE, CLIP text/image towers, st2v ddim video): used by the gtests and
// exposed to `st2v verify` through the binding (verifyEncoders).
#pragma once
#include <string>
#include <vector>

namespace st2v::enc {

struct CaseResult {
    std::string name;
    double max_abs = 0;     // max |ours - ref|
    double max_rel = 0;     // max |ours - ref| / max(1, |ref|)
    bool pass = false;      // max_rel <= 1e-4
    bool skipped = false;   // reference files absent
    std::string note;
};

// Runs every case whose reference files exist under `shared` (the folder holding golden/).
std::vector<CaseResult> verify_encoders(const std::string& shared);

}  // namespace st2v::enc
