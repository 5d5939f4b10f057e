#!/usr/bin/env node
'use strict';
// npm runs this on install (without it npm would run `node-gyp rebuild` for any package that has a
// binding.gyp). In a published package node-gyp-build keeps a prebuild that fits this platform and
// Node-API, else compiles with node-gyp (binding.gyp; scripts/torch-paths.js finds libtorch). In a
// git checkout (development, CI) `npm run build` compiles with cmake-js, so there is nothing to do
// here; building now as well would compile the addon twice.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
if (fs.existsSync(path.join(root, '.git'))) {
  console.log('mood-ood: development checkout, the addon is built by `npm run build`');
  process.exit(0);
}
const r = spawnSync(process.execPath, [require.resolve('node-gyp-build/bin.js')], { cwd: root, stdio: 'inherit' });
if (r.error) throw r.error;
process.exit(r.status ?? 1);
