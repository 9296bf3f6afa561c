/** Test helpers: reading the reference JSON of `reference-data/` and comparing arrays. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (packages/samplers/src/testing -> ../../../..). */
export const repoRoot = resolve(here, '../../../..');

/** Parses `reference-data/<rel>` relative to the repository root ("inf" / "-inf" strings become +-Infinity). */
export function loadRef<T>(rel: string): T {
  const text = readFileSync(resolve(repoRoot, 'reference-data', rel), 'utf8');
  return JSON.parse(text, (_k, v) =>
    v === 'inf' ? Number.POSITIVE_INFINITY : v === '-inf' ? Number.NEGATIVE_INFINITY : v,
  ) as T;
}

/** Flattens nested number arrays. */
export function flat(a: unknown): number[] {
  return (a as unknown[]).flat(Number.POSITIVE_INFINITY) as number[];
}

/** max_k |a_k - b_k| / (1 + |b_k|). */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let k = 0; k < a.length; k++) {
    const e = Math.abs(a[k]! - b[k]!) / (1 + Math.abs(b[k]!));
    if (!(e <= m)) m = Number.isNaN(e) ? Number.POSITIVE_INFINITY : Math.max(m, e);
  }
  return m;
}

/**
 * Asserts |got_k - want_k| <= atol + rtol |want_k| for every k (NaN fails), and equal lengths; the
 * failure names `what`, the index, both values and the error.
 */
export function expectClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  atol: number,
  rtol: number,
  what = 'value',
): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let k = 0; k < want.length; k++) {
    const err = Math.abs(got[k]! - want[k]!);
    if (!(err <= atol + rtol * Math.abs(want[k]!)))
      expect.fail(`${what}[${k}]: got ${got[k]}, reference ${want[k]} (error ${err})`);
  }
}
