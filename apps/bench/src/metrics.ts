/**
 * Distances between two sets of samples (row-major Float64Array, n x d), in float64 plain JS:
 * the accuracy suite's "distance to the data distribution".
 */

/** A deterministic stream of standard normals (Box-Muller over a 32-bit LCG), for projection directions. */
function normals(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const u = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

function project(x: Float64Array, d: number, dir: Float64Array): Float64Array {
  const n = x.length / d;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k]! * dir[k]!;
    out[i] = s;
  }
  return out.sort();
}

/** Empirical quantile of a sorted array at level q in (0, 1). */
function quantile(sorted: Float64Array, q: number): number {
  const pos = q * sorted.length - 0.5;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.floor(pos)));
  const j = Math.min(sorted.length - 1, i + 1);
  const f = Math.min(1, Math.max(0, pos - i));
  return sorted[i]! * (1 - f) + sorted[j]! * f;
}

/**
 * Sliced Wasserstein-2 distance (Rabin et al. 2011; Bonneel et al. 2015):
 *
 *     SW_2(P, Q)^2 = E_{theta ~ U(S^{d-1})} W_2(theta#P, theta#Q)^2
 *
 * estimated with `projections` random directions; each 1-D W_2 compares sorted projections (by
 * quantiles when the sets differ in size). Directions depend only on `seed`.
 *
 * @example
 * slicedWasserstein(a, b, 2, 64, 1); // a, b: Float64Array of n x 2 points
 */
export function slicedWasserstein(
  a: Float64Array,
  b: Float64Array,
  d: number,
  projections: number,
  seed: number,
): number {
  if (a.length % d !== 0 || b.length % d !== 0)
    throw new RangeError(`sample arrays must hold whole rows of ${d}`);
  const rnd = normals(seed);
  const dir = new Float64Array(d);
  let total = 0;
  for (let p = 0; p < projections; p++) {
    let norm = 0;
    for (let k = 0; k < d; k++) {
      dir[k] = rnd();
      norm += dir[k]! ** 2;
    }
    norm = Math.sqrt(norm);
    for (let k = 0; k < d; k++) dir[k]! /= norm;
    const pa = project(a, d, dir);
    const pb = project(b, d, dir);
    let w = 0;
    if (pa.length === pb.length) {
      for (let i = 0; i < pa.length; i++) w += (pa[i]! - pb[i]!) ** 2;
      w /= pa.length;
    } else {
      const m = Math.max(pa.length, pb.length);
      for (let i = 0; i < m; i++) {
        const q = (i + 0.5) / m;
        w += (quantile(pa, q) - quantile(pb, q)) ** 2;
      }
      w /= m;
    }
    total += w;
  }
  return Math.sqrt(total / projections);
}

/** Median of the pairwise distances within `x` (the usual kernel bandwidth heuristic), over at most 512 points. */
export function medianDistance(x: Float64Array, d: number): number {
  const n = Math.min(512, x.length / d);
  const ds: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += (x[i * d + k]! - x[j * d + k]!) ** 2;
      ds.push(Math.sqrt(s));
    }
  }
  ds.sort((p, q) => p - q);
  return ds[ds.length >> 1] ?? 1;
}

function meanKernel(a: Float64Array, b: Float64Array, d: number, inv2h2: number): number {
  const na = a.length / d;
  const nb = b.length / d;
  let s = 0;
  for (let i = 0; i < na; i++) {
    for (let j = 0; j < nb; j++) {
      let r = 0;
      for (let k = 0; k < d; k++) r += (a[i * d + k]! - b[j * d + k]!) ** 2;
      s += Math.exp(-r * inv2h2);
    }
  }
  return s / (na * nb);
}

/**
 * Squared maximum mean discrepancy with a Gaussian kernel k(x, y) = exp(-|x - y|^2 / (2 h^2))
 * (Gretton et al. 2012, eq. 5, the biased V-statistic, so it is >= 0):
 *
 *     MMD^2 = mean k(a, a') + mean k(b, b') - 2 mean k(a, b)
 *
 * @example
 * mmd(a, b, 2, medianDistance(b, 2));
 */
export function mmd(a: Float64Array, b: Float64Array, d: number, bandwidth: number): number {
  if (!(bandwidth > 0)) throw new RangeError(`bandwidth must be > 0, got ${bandwidth}`);
  const inv = 1 / (2 * bandwidth * bandwidth);
  return Math.max(
    0,
    meanKernel(a, a, d, inv) + meanKernel(b, b, d, inv) - 2 * meanKernel(a, b, d, inv),
  );
}

/** Mean and max Euclidean distance between corresponding rows of `a` and `b` (the first `rows` rows). */
export function rowL2(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  d: number,
  rows: number,
): { meanL2: number; maxL2: number } {
  let sum = 0;
  let max = 0;
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += (a[i * d + k]! - b[i * d + k]!) ** 2;
    const r = Math.sqrt(s);
    sum += r;
    max = Math.max(max, r);
  }
  return { meanL2: sum / rows, maxL2: max };
}
