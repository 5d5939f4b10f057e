import { describe, expect, it } from 'vitest';
import { Progress, formatDuration } from '../../lib/util/progress';

function sink(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = { isTTY, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => out };
}

describe('Progress', () => {
  it('formats durations as m:ss and h:mm:ss', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(75)).toBe('1:15');
    expect(formatDuration(3661)).toBe('1:01:01');
    expect(formatDuration(Number.NaN)).toBe('--:--');
  });

  it('draws a bar with counts on a TTY and ends with a newline', () => {
    const s = sink(true);
    const p = new Progress({ label: 'feat', total: 10, unit: 'img', stream: s.stream });
    p.tick(5);
    p.finish('done');
    const t = s.text();
    expect(t).toContain('\r');
    expect(t).toMatch(/\[#{12}\.{12}\]/);
    expect(t).toContain('5/10 (50.0%)');
    expect(t.endsWith('done\n')).toBe(true);
  });

  it('logs plain lines without escape codes off a TTY', () => {
    const s = sink(false);
    const p = new Progress({ label: 'train', total: 4, unit: 'step', stream: s.stream, logEveryMs: 0 });
    p.finish();
    expect(s.text()).not.toContain('\x1b');
    expect(s.text()).toMatch(/^\d{4}-\d\d-\d\dT.* train  0\/4 \(0\.0%\)/);
  });

  it('prints nothing when silent', () => {
    const s = sink(true);
    const p = new Progress({ label: 'x', total: 2, stream: s.stream, silent: true });
    p.tick();
    p.finish();
    expect(s.text()).toBe('');
  });
});
