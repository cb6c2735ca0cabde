// npm's `prepare`: compiles the TypeScript (lib/ -> dist/) and makes dist/cli/main.js executable.
//
// npm runs it after `npm install` in this folder (the devDependencies, TypeScript among them, are in by then), and
// also when `npx st2v` links this folder into its npx cache, which may happen before any install. Without
// TypeScript there, tsc cannot run: failing would leave npx's cache entry for this folder half made (no
// package.json), and npm never remakes it, so every later `npx st2v` here would fail with ENOENT. So without
// TypeScript this says so and succeeds; the `st2v` bin (bin/st2v.js) then says to run `npm install` first.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
} catch {
  process.stderr.write('streamingt2v prepare: TypeScript is not installed here yet, dist/ not built: run `npm install`\n');
  process.exit(0);
}
try {
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
} catch {
  process.exit(1);  // tsc printed the errors
}
require('./bin-exec.cjs');
