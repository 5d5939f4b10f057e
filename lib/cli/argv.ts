/**
 * The reference scripts spell flags in snake_case (`--data_set`); we accept those and kebab-case
 * alike by rewriting `--foo_bar` to `--foo-bar` before parsing.
 */
export function normalizeFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  let passthrough = false;
  for (const a of argv) {
    if (passthrough || !a.startsWith('--')) {
      out.push(a);
      if (a === '--') passthrough = true;
      continue;
    }
    if (a === '--') {
      passthrough = true;
      out.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    const rest = eq < 0 ? '' : a.slice(eq);
    out.push(name.replace(/_/g, '-') + rest);
  }
  return out;
}
