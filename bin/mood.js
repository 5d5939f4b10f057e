#!/usr/bin/env node
'use strict';
// The `mood` command. Runs the compiled CLI (dist/). In a source checkout whose dist/ is missing or
// older than lib/, runs the sources through ts-node instead, so a stale build never answers.
const path = require('node:path');
const fs = require('node:fs');
const root = path.join(__dirname, '..');
const compiled = path.join(root, 'dist', 'cli', 'main.js');
const sources = path.join(root, 'lib');

function newestMtime(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function useCompiled() {
  if (!fs.existsSync(compiled)) return false;
  if (!fs.existsSync(sources)) return true; // installed package: dist only
  return fs.statSync(compiled).mtimeMs >= newestMtime(sources);
}

if (useCompiled()) {
  require(compiled).main(process.argv.slice(2));
} else {
  require('ts-node').register({ transpileOnly: true, project: path.join(root, 'tsconfig.json') });
  require(path.join(sources, 'cli', 'main.ts')).main(process.argv.slice(2));
}
