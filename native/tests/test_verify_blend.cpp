// `st2v verify` group "blend" on golden/st2v/blend alone (a dump folder holding only the manifest and blend/).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "models/common/verify_registry.h"

namespace fs = std::filesystem;
using namespace st2v;

TEST(VerifyBlend, OfficialBlendCasesPass) {
    const char* e = std::getenv("ST2V_SHARED");
    const fs::path src = fs::path(e ? e : "../shared") / "golden" / "st2v";
    if (!fs::exists(src / "blend" / "chunk_preds.npy")) GTEST_SKIP() << "golden/st2v/blend not found (set ST2V_SHARED)";
    const fs::path dir = fs::path(::testing::TempDir()) / "st2v-verify-blend";
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::create_directory_symlink(fs::absolute(src / "blend"), dir / "blend");
    fs::create_symlink(fs::absolute(src / "manifest.json"), dir / "manifest.json");
    const std::vector<verify::CaseResult> res = verify::run_verify(dir.string());
    std::set<std::string> want = {"blend_offsets", "blend_x0_step0", "blend_x0_step1", "blend_x0_step2", "blend_vp_sigmas",
                                  "blend_solver_sigmas", "blend_v_out"};
    for (const verify::CaseResult& r : res) {
        EXPECT_TRUE(r.pass) << r.name << ": max abs " << r.max_abs << " " << r.note;
        if (r.name == "blend_offsets" || r.name.rfind("blend_x0_step", 0) == 0) EXPECT_EQ(r.max_abs, 0.0) << r.name;
        std::printf("  %-22s max abs %.3g (max |ref| %.3g)\n", r.name.c_str(), r.max_abs, r.max_ref);
        want.erase(r.name);
    }
    EXPECT_TRUE(want.empty()) << "missing case " << *want.begin();
    fs::remove_all(dir);
}
