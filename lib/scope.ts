/**
 * Tensor lifetimes: `tidy(fn)` disposes every tensor created while fn runs (sync or async) except
 * what fn returns or `keep()`s. AsyncLocalStorage gives each tidy its own scope even when several
 * run concurrently.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

class Scope {
  readonly tracked = new Set<Disposable>();
}

const storage = new AsyncLocalStorage<Scope>();
const kept = new WeakSet<Disposable>();

/** Called by every tensor constructor. */
export function track(t: Disposable): void {
  const s = storage.getStore();
  if (s) s.tracked.add(t);
}

/** Exempts a tensor from the enclosing tidy's cleanup. */
export function keep<T extends Disposable>(t: T): T {
  kept.add(t);
  const s = storage.getStore();
  if (s) s.tracked.delete(t);
  return t;
}

function collectReturned(value: unknown, out: Set<Disposable>, depth = 0): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (typeof (value as Disposable).dispose === 'function' && 'isDisposed' in (value as object)) {
    out.add(value as Disposable);
    return;
  }
  const items = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>);
  for (const v of items) collectReturned(v, out, depth + 1);
}

function finish(scope: Scope, result: unknown): void {
  const survivors = new Set<Disposable>();
  collectReturned(result, survivors);
  for (const t of scope.tracked) {
    if (!survivors.has(t) && !kept.has(t) && !t.isDisposed) t.dispose();
  }
  // Survivors belong to the enclosing scope, if any.
  const outer = storage.getStore();
  if (outer) for (const t of survivors) outer.tracked.add(t);
}

export function tidy<R>(fn: () => Promise<R>): Promise<R>;
export function tidy<R>(fn: () => R): R;
export function tidy<R>(fn: () => R | Promise<R>): R | Promise<R> {
  const scope = new Scope();
  let result: R | Promise<R>;
  try {
    result = storage.run(scope, fn);
  } catch (e) {
    finish(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (v) => {
        finish(scope, v);
        return v;
      },
      (e) => {
        finish(scope, undefined);
        throw e;
      },
    );
  }
  finish(scope, result);
  return result;
}
