/**
 * Sample-quality metrics in float64 JavaScript: the energy distance for low-dimensional data, and the
 * Fréchet distance between Gaussians fitted to features (FID's formula).
 */
import { InvalidArgumentError } from '@diffuse/backend';
import { symmetricEigen } from '@diffuse/models';

/**
 * The (squared) energy distance between two samples of points in R^d (Szekely & Rizzo 2013,
 * "Energy statistics", eq. 2.1), the V-statistic:
 *
 *     D^2(X, Y) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||
 *
 * It is >= 0 and 0 only when the distributions agree; for two samples of one distribution it is
 * positive only by sampling error (the baseline a model's samples are compared against).
 * `x` and `y` are row-major [n, d] and [m, d]. O(n m d).
 *
 * @example
 * energyDistance(Float64Array.of(0, 0, 1, 1), Float64Array.of(0, 1, 1, 0), 2);
 */
export function energyDistance(x: ArrayLike<number>, y: ArrayLike<number>, d: number): number {
  if (!Number.isInteger(d) || d < 1)
    throw new InvalidArgumentError(`dimension must be a positive integer, got ${d}`);
  if (x.length % d !== 0 || y.length % d !== 0 || x.length === 0 || y.length === 0) {
    throw new InvalidArgumentError(
      `samples must be non-empty [n, ${d}] arrays, got lengths ${x.length} and ${y.length}`,
    );
  }
  const meanDist = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
    const n = a.length / d;
    const m = b.length / d;
    let s = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let q = 0;
        for (let k = 0; k < d; k++) {
          const t = a[i * d + k]! - b[j * d + k]!;
          q += t * t;
        }
        s += Math.sqrt(q);
      }
    }
    return s / (n * m);
  };
  return 2 * meanDist(x, y) - meanDist(x, x) - meanDist(y, y);
}

/** Mean and covariance of a sample: the Gaussian the Fréchet distance fits to it. */
export interface GaussianStats {
  /** Dimension d. */
  dim: number;
  /** Mean [d]. */
  mean: Float64Array;
  /** Covariance [d, d], row-major, unbiased (divides by n - 1, as numpy.cov). */
  cov: Float64Array;
  /** Number of points it was estimated from. */
  count: number;
}

/**
 * Mean and unbiased covariance of the rows of `x` (row-major [n, d], n >= 2), in float64.
 *
 * @example
 * const s = gaussianStats(Float64Array.of(0, 0, 2, 2), 2); // mean [1, 1], cov [[2, 2], [2, 2]]
 */
export function gaussianStats(x: ArrayLike<number>, d: number): GaussianStats {
  if (!Number.isInteger(d) || d < 1)
    throw new InvalidArgumentError(`dimension must be a positive integer, got ${d}`);
  if (x.length % d !== 0 || x.length < 2 * d) {
    throw new InvalidArgumentError(
      `a sample must be an [n, ${d}] array with n >= 2, got length ${x.length}`,
    );
  }
  const n = x.length / d;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k]! += x[i * d + k]!;
  for (let k = 0; k < d; k++) mean[k]! /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) row[k] = x[i * d + k]! - mean[k]!;
    for (let a = 0; a < d; a++) {
      const ra = row[a]!;
      if (ra === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b]! += ra * row[b]!;
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b]! / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  for (const v of mean)
    if (!Number.isFinite(v)) throw new InvalidArgumentError('sample holds a non-finite value');
  return { dim: d, mean, cov, count: n };
}

/**
 * The principal square root of a symmetric positive semi-definite matrix A (row-major [d, d]):
 * the symmetric PSD R with R R = A, as U diag(sqrt(max(lambda, 0))) U^T from the symmetric
 * eigendecomposition A = U diag(lambda) U^T (Higham, "Functions of Matrices", 2008, sec. 6.1).
 * Eigenvalues below zero by rounding are clipped to 0.
 *
 * @example
 * sqrtmPsd(Float64Array.of(5, 4, 4, 5), 2); // [2, 1, 1, 2]
 */
export function sqrtmPsd(a: Float64Array, d: number): Float64Array {
  if (a.length !== d * d)
    throw new InvalidArgumentError(`matrix must be [${d}, ${d}], got ${a.length} values`);
  const { values, vectors: u } = symmetricEigen(a, d);
  const r = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(values[k]!, 0));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const uik = u[i * d + k]! * s;
      if (uik === 0) continue;
      for (let j = 0; j < d; j++) r[i * d + j]! += uik * u[j * d + k]!;
    }
  }
  return r;
}

/** Row-major product A B of [d, d] matrices. */
function matMul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const c = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) c[i * d + j]! += aik * b[k * d + j]!;
    }
  return c;
}

/**
 * The Fréchet distance between two Gaussians N(m1, S1) and N(m2, S2), the squared 2-Wasserstein
 * distance between them (Dowson & Landau 1982) and the formula of FID (Heusel et al. 2017, eq. 6):
 *
 *     d^2 = ||m1 - m2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))
 *
 * tr((S1 S2)^(1/2)) is computed as tr((R S2 R)^(1/2)) with R = S1^(1/2) (S1 S2 = R (R S2 R) R^(-1) is
 * similar to the symmetric PSD R S2 R, so their square roots have the same trace), which needs only
 * symmetric eigendecompositions (`sqrtmPsd`) and stays real where `scipy.linalg.sqrtm` of the
 * non-symmetric product can return small imaginary parts.
 *
 * @example
 * const fd = frechetDistance(gaussianStats(featsA, 128), gaussianStats(featsB, 128));
 */
export function frechetDistance(p: GaussianStats, q: GaussianStats): number {
  const d = p.dim;
  if (q.dim !== d) throw new InvalidArgumentError(`dimensions differ: ${p.dim} and ${q.dim}`);
  let meanTerm = 0;
  for (let k = 0; k < d; k++) meanTerm += (p.mean[k]! - q.mean[k]!) ** 2;
  let trace = 0;
  for (let k = 0; k < d; k++) trace += p.cov[k * d + k]! + q.cov[k * d + k]!;
  const r = sqrtmPsd(p.cov, d);
  const m = matMul(matMul(r, q.cov, d), r, d);
  for (let i = 0; i < d; i++)
    for (let j = i + 1; j < d; j++) {
      const v = (m[i * d + j]! + m[j * d + i]!) / 2; // symmetric up to rounding
      m[i * d + j] = v;
      m[j * d + i] = v;
    }
  const { values } = symmetricEigen(m, d);
  let cross = 0;
  for (const v of values) cross += Math.sqrt(Math.max(v, 0));
  return Math.max(meanTerm + trace - 2 * cross, 0);
}
