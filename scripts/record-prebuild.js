#!/usr/bin/env node
'use strict';
// After prebuildify: record which libtorch the prebuild was linked against, so a load failure on
// another machine can say what was expected and what was found (lib/binding.ts reads this).
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const dir = path.join(__dirname, '..', 'prebuilds', `${process.platform}-${process.arch}`);
if (!fs.existsSync(dir)) {
  console.error(`record-prebuild: ${dir} does not exist (did prebuildify run?)`);
  process.exit(1);
}
const torchPaths = (what) => execFileSync(process.execPath, [path.join(__dirname, 'torch-paths.js'), what]).toString();
const record = { torchVersion: torchPaths('version'), torchLibDir: torchPaths('libdir'), cxxAbi: torchPaths('abi'), napiVersion: 8, builtAt: new Date().toISOString() };
const tmp = path.join(dir, `.mood-build.json.${process.pid}`);
fs.writeFileSync(tmp, JSON.stringify(record, null, 2) + '\n');
fs.renameSync(tmp, path.join(dir, 'mood-build.json'));
console.log(`recorded ${JSON.stringify(record)}`);
