import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../lib/cli/main';
import { normalizeFlags } from '../../lib/cli/argv';

// The documentation matches the code: every fenced TypeScript example in README.md and docs/*.md
// type-checks against the package's types (`import ... from 'mood-ood'` resolved to lib/index.ts, as
// the published dist/index.d.ts is compiled from it), every `mood ...` command line in them names a
// command and flags the CLI defines, and the scripts, npm scripts and files they mention exist.
const root = path.resolve(__dirname, '../..');
const docFiles = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'mood-docs-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

interface Block {
  file: string;
  /** 1-based line of the first line of the block's content. */
  line: number;
  lang: string;
  text: string;
}

function fencedBlocks(file: string): Block[] {
  const lines = fs.readFileSync(path.join(root, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)```(\S*)\s*$/.exec(lines[i]);
    if (!m) continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j])) j++;
    if (j >= lines.length) throw new Error(`${file}:${i + 1}: fenced block never closed`);
    out.push({ file, line: start + 1, lang: m[2], text: lines.slice(start, j).join('\n') });
    i = j;
  }
  return out;
}

const blocks = docFiles.flatMap(fencedBlocks);

/** Prose outside fenced blocks (inline `code` spans are checked there). */
function prose(file: string): Array<{ line: number; text: string }> {
  const lines = fs.readFileSync(path.join(root, file), 'utf8').split('\n');
  const out: Array<{ line: number; text: string }> = [];
  let inFence = false;
  lines.forEach((l, i) => {
    if (/^\s*```/.test(l)) inFence = !inFence;
    else if (!inFence) out.push({ line: i + 1, text: l });
  });
  return out;
}

describe('TypeScript examples in the docs', () => {
  const tsBlocks = blocks.filter((b) => b.lang === 'ts' || b.lang === 'typescript');

  it('there are examples to check (README, distributed, data, finetune, pretrain, eval)', () => {
    expect(new Set(tsBlocks.map((b) => b.file))).toEqual(new Set(['README.md', 'docs/distributed.md', 'docs/data.md', 'docs/finetune.md', 'docs/pretrain.md', 'docs/eval.md']));
  });

  it('import only from the package root and type-check against its types (strict)', () => {
    const dir = path.join(scratch, 'ts');
    fs.mkdirSync(dir, { recursive: true });
    const origin = new Map<string, { block: Block; offset: number }>();
    const deepImports: string[] = [];
    tsBlocks.forEach((b, k) => {
      const lines = b.text.split('\n');
      // Imports go to the top of a module; the rest runs in an async function (top-level await in a script).
      const imports = lines.filter((l) => /^import\s/.test(l));
      const body = lines.map((l) => (/^import\s/.test(l) ? '' : l));
      for (const imp of imports) if (!/from '(mood-ood|node:[a-z/]+)';$/.test(imp)) deepImports.push(`${b.file}:${b.line}: ${imp}`);
      const name = `example${k}.ts`;
      const head = [...imports, 'export {};', 'async function example(): Promise<void> {'];
      fs.writeFileSync(path.join(dir, name), [...head, ...body, '}', 'void example;', ''].join('\n'));
      origin.set(name, { block: b, offset: head.length });
    });
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022', module: 'commonjs', moduleResolution: 'node', lib: ['ES2022'], strict: true, noEmit: true, skipLibCheck: true,
          types: ['node'], typeRoots: [path.join(root, 'node_modules', '@types')], baseUrl: dir, paths: { 'mood-ood': [path.join(root, 'lib', 'index.ts')] },
          // Examples show calls, not programs: a value computed and not used is fine there.
          noUnusedLocals: false,
        },
        files: [...origin.keys()],
      }),
    );
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(dir, 'tsconfig.json')], { cwd: dir, encoding: 'utf8' });
    // Map "exampleK.ts(L,C): error ..." back to the doc's own line.
    const errors = (r.stdout + r.stderr)
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const m = /^(example\d+\.ts)\((\d+),(\d+)\): (.*)$/.exec(l);
        if (!m) return l;
        const o = origin.get(m[1])!;
        return `${o.block.file}:${o.block.line + Number(m[2]) - 1 - o.offset}: ${m[4]}`;
      });
    expect({ deepImports, errors }).toEqual({ deepImports: [], errors: [] });
    expect(r.status).toBe(0);
  });
});

// --- command lines -------------------------------------------------------------------------------

/** Shell words of one logical line (quotes respected, # comments dropped). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (c === '#' && !has && cur === '') break;
    else if (/\s/.test(c)) {
      if (has || cur) words.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has || cur) words.push(cur);
  return words;
}

/** Logical lines of a shell block: continuations joined, with the doc line each starts on. */
function logicalLines(b: Block): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  let acc = '';
  let start = 0;
  b.text.split('\n').forEach((l, i) => {
    if (!acc) start = b.line + i;
    if (/\\\s*$/.test(l)) acc += l.replace(/\\\s*$/, ' ');
    else {
      out.push({ line: start, text: acc + l });
      acc = '';
    }
  });
  return out;
}

const program = buildProgram();

function findCommand(parent: Command, name: string): Command | undefined {
  return parent.commands.find((c) => c.name() === name || c.aliases().includes(name));
}

/** Problems with one `mood ...` invocation (words after `mood`). */
function checkInvocation(words: string[]): string[] {
  const problems: string[] = [];
  const args = words.map((w) => w.replace(/^\[+|\]+$/g, '')).filter((w) => w && w !== '...' && w !== '|');
  if (args.length === 0 || args[0].startsWith('-')) return problems; // `mood --help` / `mood -v`
  if (args[0].endsWith(':')) return problems; // an error message quoted in the docs (`mood finetune: --x: ...`)
  let cmd = findCommand(program, args[0]);
  if (!cmd) return [`no command 'mood ${args[0]}'`];
  let i = 1;
  if (cmd.commands.length && args[1] && !args[1].startsWith('-')) {
    const sub = findCommand(cmd, args[1]);
    if (!sub) return [`no command 'mood ${args[0]} ${args[1]}'`];
    cmd = sub;
    i = 2;
  }
  const known = new Set(cmd.options.flatMap((o) => [o.long, o.short]).filter(Boolean) as string[]);
  known.add('--help').add('-h');
  const rest = normalizeFlags(args.slice(i));
  for (let k = 0; k < rest.length; k++) {
    const w = rest[k];
    if (w === '--') {
      if (cmd.name() === 'launch') {
        const target = rest[k + 1];
        if (target && !/\.(c|m)?(j|t)s$/.test(target)) problems.push(...checkInvocation(rest.slice(k + 1)).map((p) => `after 'mood launch ... --': ${p}`));
      }
      break;
    }
    if (!w.startsWith('-') || /^-\d/.test(w)) continue;
    const flag = w.split('=')[0];
    if (!known.has(flag)) problems.push(`'mood ${cmd.parent?.name() === 'mood' ? '' : `${cmd.parent?.name()} `}${cmd.name()}' has no flag ${flag}`);
  }
  return problems;
}

/** `mood` invocations in a list of shell words (also after `npx`, `&&`, `;`, `/usr/bin/time -v`). */
function invocations(words: string[]): string[][] {
  const out: string[][] = [];
  for (let k = 0; k < words.length; k++) {
    if (words[k] !== 'mood') continue;
    const prev = words[k - 1];
    if (k > 0 && !['npx', '&&', ';', '||', '-v', 'time', 'exec'].includes(prev) && !prev.endsWith('/time')) continue;
    let end = k + 1;
    while (end < words.length && !['&&', ';', '||', '>', '|'].includes(words[end])) end++;
    out.push(words.slice(k + 1, end));
  }
  return out;
}

describe('mood command lines in the docs', () => {
  const shellBlocks = blocks.filter((b) => ['', 'sh', 'bash', 'shell', 'console'].includes(b.lang));

  it('name commands and flags the CLI defines (fenced blocks and inline `mood ...` code)', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const b of shellBlocks) {
      for (const l of logicalLines(b)) {
        for (const inv of invocations(shellWords(l.text))) {
          checked++;
          for (const p of checkInvocation(inv)) problems.push(`${b.file}:${l.line}: ${p}`);
        }
      }
    }
    for (const file of docFiles) {
      for (const { line, text } of prose(file)) {
        for (const m of text.matchAll(/`((?:npx )?mood [^`]+)`/g)) {
          for (const inv of invocations(shellWords(m[1]))) {
            checked++;
            for (const p of checkInvocation(inv)) problems.push(`${file}:${line}: ${p}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(50);
  });

  it("flag tables (under a 'Flags' heading) list flags of the command their page is about", () => {
    const problems: string[] = [];
    let rows = 0;
    for (const file of docFiles) {
      let command: string | undefined;
      let flagsSection = false;
      for (const { line, text } of prose(file)) {
        const h = /^#+\s+(.*)$/.exec(text);
        if (h) {
          const named = /`mood ([a-z-]+)/.exec(h[1]);
          if (named) command = named[1];
          flagsSection = /\bflags\b/i.test(h[1]);
          continue;
        }
        if (!flagsSection || !command || !text.startsWith('|')) continue;
        const first = text.split('|')[1] ?? '';
        for (const m of first.matchAll(/`(--[\w-]+)`/g)) {
          rows++;
          for (const p of checkInvocation([command, m[1]])) problems.push(`${file}:${line}: ${p}`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(rows).toBeGreaterThan(40);
  });

  it('the checker itself catches a wrong command or flag', () => {
    expect(checkInvocation(['finetune', '--data_set', 'x', '--no_such_flag', '1'])).toEqual(["'mood finetune' has no flag --no-such-flag"]);
    expect(checkInvocation(['fine-tune'])).toEqual(["no command 'mood fine-tune'"]);
    expect(checkInvocation(['data', 'previews'])).toEqual(["no command 'mood data previews'"]);
    expect(checkInvocation(['launch', '--nproc_per_node', '2', '--', 'pretrain', '--bogus'])).toEqual(["after 'mood launch ... --': 'mood pretrain' has no flag --bogus"]);
    expect(checkInvocation(['launch', '--nproc_per_node', '2', '--', 'script.js', '--bogus'])).toEqual([]);
    expect(invocations(shellWords("npx mood score --detector d.npz x.npy > out.json # comment --x"))).toEqual([['score', '--detector', 'd.npz', 'x.npy']]);
  });

  it('npm scripts, script files and docs they point to exist', () => {
    const scripts = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts as Record<string, string>;
    const problems: string[] = [];
    const texts = [
      ...shellBlocks.flatMap((b) => logicalLines(b).map((l) => ({ file: b.file, line: l.line, text: l.text }))),
      ...docFiles.flatMap((file) => prose(file).map((p) => ({ file, ...p }))),
    ];
    for (const { file, line, text } of texts) {
      for (const m of text.matchAll(/npm run ([\w:-]+)/g)) if (!(m[1] in scripts)) problems.push(`${file}:${line}: no npm script '${m[1]}'`);
      for (const m of text.matchAll(/(?<![\w./-])((?:scripts|tests|native|lib|docs)\/[\w./-]*[\w])/g)) {
        const p = m[1];
        if (/^\.?\*/.test(text.slice(m.index! + p.length))) continue; // a pattern such as native/core/mim.*
        if (!fs.existsSync(path.join(root, p))) problems.push(`${file}:${line}: ${p} does not exist`);
      }
    }
    for (const file of docFiles) {
      for (const { line, text } of prose(file)) {
        for (const m of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
          if (/^[a-z]+:/.test(m[1])) continue;
          if (!fs.existsSync(path.join(root, path.dirname(file), m[1]))) problems.push(`${file}:${line}: link to ${m[1]} does not exist`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('no doc points at the old deep import paths', () => {
    const stale: string[] = [];
    for (const file of docFiles) {
      fs.readFileSync(path.join(root, file), 'utf8').split('\n').forEach((l, i) => {
        if (/dist\/dist|lib\/dist\b|mood-ood\/(dist|lib)\//.test(l)) stale.push(`${file}:${i + 1}: ${l.trim()}`);
      });
    }
    expect(stale).toEqual([]);
  });
});
