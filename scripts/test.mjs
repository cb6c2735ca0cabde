// `npm test`: builds what is missing, runs every suite (C++ unit tests, ava), and prints one closing line
// "N passed, N failed[, N skipped]" totalling all suites. Exit code 0 only if nothing failed.
// `npm run test:native` (--native): the same without the ava suite (C++ unit tests and the CUDA emulation checks).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let passed = 0, failed = 0, skipped = 0;

function run(cmd, args, opts = {}) {
  console.log(`\n> ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 30, ...opts });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  return r;
}

// 1. Build: native addon, TypeScript, and the C++ test binary.
if (process.env.ST2V_TEST_NO_BUILD !== '1') {
  for (const [cmd, args] of [
    ['npx', ['--no-install', 'cmake-js', 'compile', '--log-level', 'error']],
    ['npx', ['--no-install', 'tsc', '-p', 'tsconfig.json']],
    ['cmake', ['-S', '.', '-B', 'build-cpp', '-G', 'Ninja', '-DCMAKE_BUILD_TYPE=Release', '-DST2V_CUDA_EMU=ON']],
    ['ninja', ['-C', 'build-cpp']],
  ]) {
    const r = run(cmd, args);
    if (r.status !== 0) {
      console.log(`build step failed: ${cmd} ${args.join(' ')}`);
      console.log(`${passed} passed, ${failed + 1} failed`);
      process.exit(1);
    }
  }
}

// 2. C++ unit tests (GoogleTest).
const gtest = path.join(root, 'build-cpp', 'st2v_tests');
if (fs.existsSync(gtest)) {
  const r = run(gtest, ['--gtest_brief=1']);
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  const total = /\[==========\] (\d+) tests? from/.exec(out);
  const p = /\[  PASSED  \] (\d+) test/.exec(out);
  const f = /\[  FAILED  \] (\d+) test/.exec(out);
  const s = /\[  SKIPPED \] (\d+) test/.exec(out);
  const np = p ? Number(p[1]) : 0, nf = f ? Number(f[1]) : 0, ns = s ? Number(s[1]) : 0;
  passed += np; failed += nf; skipped += ns;
  if (r.status !== 0 && nf === 0) failed += 1; // crashed
  console.log(`C++: ${np} passed, ${nf} failed, ${ns} skipped${total ? '' : ' (no summary: crashed?)'}`);
} else {
  console.log('C++ test binary missing (GoogleTest not installed?)');
  failed += 1;
}

// 2b. The CUDA backend's kernels on the CPU emulation of CUDA (native/cuda/emu, docs/cuda.md): no GPU, no nvcc.
// build-cpp (configured with ST2V_CUDA_EMU=ON above, so st2v_core is compiled once) holds the emulated library,
// the emulator's self-test and cuda_check (+ cuda_model_check when it exists) linked against st2v_core; each
// check's closing {"summary": true, "passed", "failed"} line is counted. cuda_model_check_emu (the stage-2
// networks) takes several minutes under the emulation even with --quick: it runs only with
// ST2V_TEST_CUDA_MODEL_EMU=1.
{
  const t0 = Date.now();
  const dir = path.join(root, 'build-cpp');
  const checks = [['cuda_emu_selftest', []], ['cuda_check_emu', ['--quick', '--reps', '1']]];
  if (process.env.ST2V_TEST_CUDA_MODEL_EMU === '1' &&
      fs.existsSync(path.join(root, 'native/cuda/tests/cuda_model_check.cpp'))) {
    checks.push(['cuda_model_check_emu', ['--quick']]);
  }
  const lib = path.join(dir, 'libstreamingt2v_cuda_emu.so');
  for (const [name, args] of checks) {
    const exe = path.join(dir, name);
    if (!fs.existsSync(exe) || !fs.existsSync(lib)) {
      console.log(`CUDA emulation: ${name} not built (build-cpp configured without -DST2V_CUDA_EMU=ON?)`);
      failed += 1;
      continue;
    }
    const r = run(exe, args, { env: { ...process.env, ST2V_CUDA_LIB: lib } });
    const lines = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('{'));
    let summary = null;
    for (const l of lines) {
      try {
        const j = JSON.parse(l);
        if (j.summary) summary = j;
      } catch { /* not a JSON line */ }
    }
    if (summary && Number.isInteger(summary.passed) && Number.isInteger(summary.failed)) {
      passed += summary.passed; failed += summary.failed;
      if (r.status !== 0 && summary.failed === 0) failed += 1;
      console.log(`CUDA emulation (emulated on the CPU, not a GPU): ${name}: ${summary.passed} passed, ` +
        `${summary.failed} failed`);
    } else {
      failed += 1;
      console.log(`CUDA emulation: ${name} gave no summary (exit ${r.status}${r.signal ? `, ${r.signal}` : ''})`);
    }
  }
  console.log(`CUDA emulation step: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

// 3. ava (TypeScript / addon tests), TAP for counting.
if (!process.argv.includes('--native')) {
  const r = run('npx', ['--no-install', 'ava', '--tap'], { env: { ...process.env, FORCE_COLOR: '0' } });
  const out = r.stdout ?? '';
  const ok = (out.match(/^ok \d+/gm) ?? []).length;
  const skip = (out.match(/^ok \d+ .*# SKIP/gm) ?? []).length;
  const notOk = (out.match(/^not ok \d+/gm) ?? []).length;
  passed += ok - skip; skipped += skip; failed += notOk;
  if (r.status !== 0 && notOk === 0) failed += 1;
  console.log(`ava: ${ok - skip} passed, ${notOk} failed, ${skip} skipped`);
}

console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
