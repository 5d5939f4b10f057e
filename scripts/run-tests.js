#!/usr/bin/env node
'use strict';
// `npm test`: the C++ core tests (CTest, no Node involved) then the vitest suites, with one plain
// closing line "Tests: N passed, N failed[, N skipped]" summing both.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const root = path.resolve(__dirname, '..');
const extra = process.argv.slice(2);
let passed = 0, failed = 0, skipped = 0;

if (!fs.existsSync(path.join(root, 'build', 'CTestTestfile.cmake'))) {
  console.error('No native build found in build/: run `npm run build` (or `bash scripts/setup.sh`) first.');
  process.exit(1);
}
const ctest = spawnSync('ctest', ['--test-dir', 'build', '--output-on-failure', '-V'], { cwd: root, encoding: 'utf8' });
process.stdout.write(ctest.stdout || '');
process.stderr.write(ctest.stderr || '');
const skips = []; // [where, title]: every skipped test, listed at the end with the reason it gives
for (const m of (ctest.stdout || '').matchAll(/^(?:\d+: )?(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/gm)) {
  passed += Number(m[1]);
  failed += Number(m[2]);
  skipped += Number(m[3] || 0);
}
for (const m of (ctest.stdout || '').matchAll(/^(?:\d+: )?\[skip\] (.*)$/gm)) skips.push(['native/tests', m[1]]);
if (ctest.status !== 0) failed += failed === 0 ? 1 : 0;

const report = path.join(root, 'tmp', `vitest-report-${process.pid}.json`);
fs.mkdirSync(path.dirname(report), { recursive: true });
const vitest = spawnSync(path.join(root, 'node_modules', '.bin', 'vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile=${report}`, ...extra], {
  cwd: root,
  stdio: 'inherit',
});
try {
  const r = JSON.parse(fs.readFileSync(report, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + (r.numTodoTests || 0);
  for (const file of r.testResults || []) {
    for (const t of file.assertionResults || []) {
      if (t.status === 'pending' || t.status === 'skipped' || t.status === 'todo') skips.push([path.relative(root, file.name), t.fullName || t.title]);
    }
  }
  fs.rmSync(report, { force: true });
} catch {
  failed += 1; // vitest crashed before writing its report
}
if (vitest.status !== 0 && failed === 0) failed = 1;
if (skips.length) {
  console.log(`Skipped (${skips.length}):`);
  for (const [where, title] of skips) console.log(`  ${where}: ${title}`);
}
console.log(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 && ctest.status === 0 && vitest.status === 0 ? 0 : 1);
