// Umbrella header of the sampling runtime (for the pipeline): PyTorch/Python-compatible RNG, the stage-1/2
// schedules and samplers, the enhancer's schedule + SDE solver, and the randomized-blending kernel.
//   runtime::TorchGenerator, runtime::PyRandom                        (rng.h)
//   runtime::DdimScheduler, ddim_sample, dpmpp_2m_sample, cfg_combine  (schedules.h)
//   runtime::EnhancerSchedule, sde_dpmpp_2m_sample, enhancer_model_fn (enhancer_sampling.h)
//   runtime::randomized_blend, plan_chunks, BlendStream                (blend.h, blend_math.h)
#pragma once
#include "runtime/blend.h"
#include "runtime/blend_math.h"
#include "runtime/enhancer_sampling.h"
#include "runtime/rng.h"
#include "runtime/schedules.h"
