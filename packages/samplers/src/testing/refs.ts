/** Test helpers: reading the reference JSON of `reference-data/` and comparing arrays. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
