#!/usr/bin/env node
'use strict';
// Prints libtorch build settings for binding.gyp (node-gyp has no find_package). Same search order
// as cmake/FindMoodTorch.cmake: LIBTORCH / Torch_DIR, an installed PyTorch, Debian's libtorch-dev.
//   node scripts/torch-paths.js include|libdir|abi|sources|version|gloo
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function configDirs() {
  const out = [];
  for (const v of ['LIBTORCH', 'Torch_DIR']) if (process.env[v]) out.push(process.env[v]);
  for (const py of [process.env.MOOD_PYTHON, 'python3'].filter(Boolean)) {
    try {
      out.push(execFileSync(py, ['-c', 'import torch,sys;sys.stdout.write(torch.utils.cmake_prefix_path)'], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000 }).toString());
    } catch { /* no PyTorch there */ }
  }
  out.push('/usr/lib/x86_64-linux-gnu/cmake/Torch', '/usr/lib/aarch64-linux-gnu/cmake/Torch');
  return out;
}

function findTorch() {
  for (const c of configDirs()) {
    for (const d of [c, path.join(c, 'Torch'), path.join(c, 'share', 'cmake', 'Torch')]) {
      if (fs.existsSync(path.join(d, 'TorchConfig.cmake'))) {
        const prefix = path.resolve(d, '..', '..', '..', '..');
        const versionFile = path.join(d, 'TorchConfigVersion.cmake');
        const m = fs.existsSync(versionFile) ? /PACKAGE_VERSION "([^"]+)"/.exec(fs.readFileSync(versionFile, 'utf8')) : null;
        const libdir = [path.join(prefix, 'lib'), path.resolve(d, '..', '..')].find((l) => fs.existsSync(path.join(l, 'libtorch.so')) || fs.existsSync(path.join(l, 'libtorch.dylib')));
        const flags = fs.existsSync(path.join(d, 'TorchConfig.cmake')) ? fs.readFileSync(path.join(d, 'TorchConfig.cmake'), 'utf8') : '';
        const abi = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(flags);
        return { dir: d, prefix, libdir: libdir || path.join(prefix, 'lib'), version: m ? m[1] : 'unknown', abi: abi ? abi[1] : '1' };
      }
    }
  }
  process.stderr.write('mood-ood: libtorch not found (LIBTORCH, Torch_DIR, python3 torch, Debian libtorch-dev).\n' +
    'Fix: sudo apt-get install libtorch-dev libgloo-dev   or   LIBTORCH=/path/to/libtorch npm run build:gyp\n');
  process.exit(1);
}

const what = process.argv[2];
const root = path.resolve(__dirname, '..');
if (what === 'sources') {
  // Every core and addon translation unit, so binding.gyp never drifts from CMake's lists.
  const list = (dir, ext) => fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith(ext)).sort().map((f) => `${dir}/${f}`);
  process.stdout.write([...list('native/core', '.cpp'), ...list('native/addon', '.cc')].join(' '));
} else {
  const t = findTorch();
  if (what === 'include') process.stdout.write([path.join(t.prefix, 'include'), path.join(t.prefix, 'include', 'torch', 'csrc', 'api', 'include')].join(' '));
  else if (what === 'libdir') process.stdout.write(t.libdir);
  else if (what === 'abi') process.stdout.write(t.abi);
  else if (what === 'version') process.stdout.write(t.version);
  else if (what === 'gloo') {
    // c10d's Gloo backend needs the gloo headers (Debian: libgloo-dev); without them dist.cpp
    // compiles its "no process group" stubs, as with CMake's check.
    const dirs = [path.join(t.prefix, 'include'), '/usr/include', '/usr/local/include'];
    const found = dirs.some((d) => fs.existsSync(path.join(d, 'gloo', 'config.h')));
    process.stdout.write(found ? 'MOOD_HAVE_GLOO_HEADERS=1' : 'MOOD_NO_GLOO_HEADERS=1');
  }
  else {
    process.stderr.write('usage: torch-paths.js include|libdir|abi|sources|version|gloo\n');
    process.exit(2);
  }
}
