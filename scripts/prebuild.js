#!/usr/bin/env node
'use strict';
// `npm run prebuild`: puts a prebuilt addon for this platform in prebuilds/<platform>-<arch>/ with
// prebuildify's naming (which node-gyp-build looks for), then records the libtorch it was built
// against (scripts/record-prebuild.js) for load-time error messages.
//
// prebuildify compiles with `node-gyp rebuild`, which would wipe ./build (our cmake-js build and its
// CTest binaries) and compile everything twice. We hand it scripts/prebuild-compile.js as its
// "node-gyp": an incremental cmake-js compile into ./build. npm also runs this script as the
// pre-hook of `npm run build`; build:native then finds everything up to date.
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const run = (cmd, args, env) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(process.execPath, [require.resolve('prebuildify/bin.js'), '--napi', '--tag-libc', '--target', 'node@20.0.0'], {
  PREBUILD_NODE_GYP: path.join(__dirname, 'prebuild-compile.js'),
});
run(process.execPath, [path.join(__dirname, 'record-prebuild.js')]);
