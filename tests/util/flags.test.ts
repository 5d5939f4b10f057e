import { describe, expect, it } from 'vitest';
import { FlagError, intFlag, listFlag, numFlag } from '../../lib/util/flags';

describe('flag parsing (lib/util/flags)', () => {
  it('not given -> undefined (the caller supplies its default)', () => {
    expect(intFlag('--n', undefined, { min: 1 })).toBeUndefined();
    expect(numFlag('--x', undefined)).toBeUndefined();
    expect(listFlag(undefined)).toEqual([]);
  });

  it('integers: decimal literals only, bounds inclusive unless open', () => {
    expect(intFlag('--n', ' 12 ')).toBe(12);
    expect(intFlag('--n', '-3')).toBe(-3);
    expect(intFlag('--n', 7)).toBe(7);
    expect(intFlag('--n', '0', { min: 0 })).toBe(0);
    expect(intFlag('--n', '10', { min: 0, max: 10 })).toBe(10);
    for (const bad of ['', '1.5', '1.0', '1e3', '0x10', 'abc', '9007199254740993']) expect(() => intFlag('--n', bad)).toThrow(FlagError);
    expect(() => intFlag('--n', '10', { min: 0, max: 10, maxOpen: true })).toThrow("--n: expected an integer in [0, 10), got '10'");
  });

  it('numbers: finite, empty string refused, open and closed bounds', () => {
    expect(numFlag('--x', '2.5e-3')).toBe(2.5e-3);
    expect(numFlag('--x', '0', { min: 0 })).toBe(0);
    for (const bad of ['', ' ', 'NaN', 'Infinity', '1e', 'x']) expect(() => numFlag('--x', bad)).toThrow(FlagError);
    expect(() => numFlag('--lr', '0', { min: 0, minOpen: true })).toThrow("--lr: expected a positive number, got '0'");
    expect(() => numFlag('--p', '1', { min: 0, max: 1, maxOpen: true })).toThrow("--p: expected a number in [0, 1), got '1'");
    expect(() => numFlag('--p', '-1', { min: 0 })).toThrow("--p: expected a number >= 0, got '-1'");
  });

  it('one message style: --flag: expected <what>, got <value>', () => {
    expect(() => intFlag('--batch_size', '0', { min: 1 })).toThrow("--batch_size: expected a positive integer, got '0'");
    expect(() => intFlag('--seed', '-1', { min: 0 })).toThrow("--seed: expected an integer >= 0, got '-1'");
    expect(() => intFlag('--k', 'x')).toThrow("--k: expected an integer, got 'x'");
    expect(() => numFlag('--lr', 'abc')).toThrow("--lr: expected a number, got 'abc'");
    expect(() => intFlag('--flag', true)).toThrow("--flag: expected an integer, got 'true'");
  });

  it('lists: comma-separated, trimmed, empty items dropped', () => {
    expect(listFlag(' a, b ,,c ')).toEqual(['a', 'b', 'c']);
    expect(listFlag('')).toEqual([]);
  });
});
