#!/usr/bin/env bash
# Proves binding.gyp still builds the addon with node-gyp, and that the result loads and runs an op.
# Builds in a scratch copy so the primary cmake-js build in ./build is left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/mood-gyp.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/scripts"
cp -r "$root/native" "$root/binding.gyp" "$root/package.json" "$work/"
cp "$root/scripts/torch-paths.js" "$work/scripts/"
ln -s "$root/node_modules" "$work/node_modules"
cd "$work"
# No network: build against the local Node headers (npm's nodedir, else the distro's /usr).
nodedir="$(npm config get nodedir 2>/dev/null || true)"
if [ -z "$nodedir" ] || [ "$nodedir" = "undefined" ] || [ "$nodedir" = "null" ]; then nodedir=/usr; fi
"$root/node_modules/.bin/node-gyp" rebuild --nodedir="$nodedir" -j "${JOBS:-2}" >"$work/gyp.log" 2>&1 || { tail -40 "$work/gyp.log"; exit 1; }
OMP_WAIT_POLICY=PASSIVE node -e '
const m = require(process.argv[1]);
const T = m.NativeTensor;
const a = T.fromTypedArray(new Float32Array([1, 2, 3, 4]), [2, 2], "float32");  // handle ids
const b = T.op("matmul", [a, a], {});
Promise.resolve(T.read(b)).then((d) => {  // values now when ready, else a Promise
  const want = [7, 10, 15, 22];
  if (Array.from(d).join() !== want.join()) { console.error("node-gyp build: wrong matmul", d); process.exit(1); }
  console.log("node-gyp build OK: libtorch " + m.buildInfo().torchVersion + ", matmul =", Array.from(d).join(" "));
});' "$work/build/Release/mood_native.node"
