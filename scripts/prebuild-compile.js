#!/usr/bin/env node
'use strict';
// Stands in for node-gyp when prebuildify calls it (scripts/prebuild.js says why): ignores node-gyp's
// arguments (`rebuild --target=... --devdir=... --release`; the addon targets Node-API, so one
// build serves every Node version) and compiles incrementally with cmake-js into ./build, where
// prebuildify then picks up build/Release/*.node.
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const r = spawnSync(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'compile', '--out', 'build'], {
  cwd: root,
  stdio: 'inherit',
});
if (r.error) throw r.error;
process.exit(r.status ?? 1);
