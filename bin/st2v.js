#!/usr/bin/env node
// The `st2v` command (package.json "bin"): runs the compiled CLI, dist/cli/main.js.
//
// This file is tracked in git, so the bin exists in a clone before anything is built. npm links a package's own
// bin into its npx cache once per folder and keeps that link: when `npx st2v` first ran before the build (bin
// pointing into dist/, not there yet), every later `npx st2v` in that folder failed ("st2v: not found" or ENOENT
// on the npx cache's package.json) until ~/.npm/_npx was cleared. With this file the link is always made; before
// the build it says what to run.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli/main.js', import.meta.url);
if (!fs.existsSync(cli)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(`st2v: this package is not built yet (no dist/cli/main.js): run \`npm install\` (or \`npm run build\`) in ${root}\n`);
  process.exitCode = 1;
} else {
  const { runCommand } = await import(cli.href);
  await runCommand(process.argv.slice(2));
}
