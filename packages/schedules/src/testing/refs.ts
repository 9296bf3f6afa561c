/** Test-only: loads the reference numbers in the repository's `reference-data/` folder. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/** Parses `reference-data/<path>` (relative to the repository root). */
export function loadRef<T = unknown>(path: string): T {
  const text = readFileSync(resolve(repoRoot, 'reference-data', path), 'utf8');
  return JSON.parse(text, (_k, v) =>
    v === 'inf' ? Number.POSITIVE_INFINITY : v === '-inf' ? Number.NEGATIVE_INFINITY : v,
  ) as T;
}

/** Largest |a - b| / (atol + rtol |b|) over two arrays; <= 1 means within tolerance. */
export function worstRatio(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rtol: number,
  atol = 0,
): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d === 0) continue;
    m = Math.max(m, d / (atol + rtol * Math.abs(b[i]!)));
  }
  return m;
}
