// npm install hook: use a prebuilt binary (prebuilds/ or build/Release) when one loads; otherwise compile
// the addon from source with cmake-js. Never downloads anything.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function loads() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

if (process.env.ST2V_SKIP_INSTALL_BUILD === '1') process.exit(0);
// npm installs a package's dependencies before its install script runs, so node-gyp-build is missing only when this
// folder is linked without an install: `npx st2v` in a clone before `npm install` (npm links the folder into its
// npx cache and runs install / prepare there). Failing then would leave that npx cache entry half made for good;
// succeed with a note instead (the st2v bin then says to run `npm install`).
try {
  require.resolve('node-gyp-build');
} catch {
  console.error('streamingt2v: the dependencies are not installed here yet, native addon not built: run `npm install`');
  process.exit(0);
}
if (loads()) {
  console.log('streamingt2v: using an existing native binary');
  process.exit(0);
}
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  console.error('streamingt2v: no prebuilt binary for this platform and cmake-js is not installed.\n' +
    'Install a C++17 compiler, cmake >= 3.18 and run `npx cmake-js compile` in the package folder.');
  process.exit(1);
}
const r = spawnSync(process.execPath, [cmakeJs, 'compile'], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
