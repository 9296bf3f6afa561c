/**
 * Small dense float64 linear algebra for the exact oracles: Cholesky factors, triangular solves and
 * the symmetric eigendecomposition (cyclic Jacobi). Matrices are row-major `Float64Array`s of size d*d.
 * These run once per mixture (or once per noise level in the float64 reference path), never per
 * tensor element, so clarity wins over speed.
 */
import { ModelError } from './errors.js';

/**
 * The lower-triangular Cholesky factor L of a symmetric positive-definite matrix A = L L^T
 * (Golub & Van Loan, Algorithm 4.2.1). Throws a `ModelError` naming `what` when A is not positive definite.
 */
export function cholesky(a: Float64Array, d: number, what = 'matrix'): Float64Array {
  const l = new Float64Array(d * d);
  for (let j = 0; j < d; j++) {
    let s = a[j * d + j]!;
    for (let k = 0; k < j; k++) s -= l[j * d + k]! ** 2;
    if (!(s > 0) || !Number.isFinite(s)) {
      throw new ModelError(
        `${what} is not symmetric positive definite (Cholesky pivot ${j} is ${s})`,
      );
    }
    const ljj = Math.sqrt(s);
    l[j * d + j] = ljj;
    for (let i = j + 1; i < d; i++) {
      let t = a[i * d + j]!;
      for (let k = 0; k < j; k++) t -= l[i * d + k]! * l[j * d + k]!;
      l[i * d + j] = t / ljj;
    }
  }
  return l;
}

/** Solves L y = b for lower-triangular L (forward substitution). */
export function solveLower(l: Float64Array, b: Float64Array, d: number): Float64Array {
  const y = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= l[i * d + k]! * y[k]!;
    y[i] = s / l[i * d + i]!;
  }
  return y;
}

/** Solves L^T x = y for lower-triangular L (back substitution). */
export function solveUpperT(l: Float64Array, y: Float64Array, d: number): Float64Array {
  const x = new Float64Array(d);
  for (let i = d - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < d; k++) s -= l[k * d + i]! * x[k]!;
    x[i] = s / l[i * d + i]!;
  }
  return x;
}

/** y = A x for a d x d matrix A. */
export function matVec(a: Float64Array, x: ArrayLike<number>, d: number): Float64Array {
  const y = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += a[i * d + j]! * x[j]!;
    y[i] = s;
  }
  return y;
}

/**
 * Eigendecomposition A = U diag(lambda) U^T of a symmetric matrix by the cyclic Jacobi method
 * (Golub & Van Loan, Algorithm 8.5.3). Returns the eigenvalues and U with eigenvectors as columns
 * (row-major). Accurate to a few ulps for the well-conditioned covariances used here.
 *
 * @example
 * const { values, vectors } = symmetricEigen(Float64Array.of(2, 1, 1, 2), 2); // values 1 and 3
 */
export function symmetricEigen(
  a: Float64Array,
  d: number,
): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const u = new Float64Array(d * d);
  for (let i = 0; i < d; i++) u[i * d + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let norm = 0;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        const v = m[i * d + j]! ** 2;
        norm += v;
        if (i !== j) off += v;
      }
    }
    if (off <= 1e-30 * norm || off === 0) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q]!;
        if (apq === 0) continue;
        const app = m[p * d + p]!;
        const aqq = m[q * d + q]!;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A <- J^T A J with the rotation J in the (p, q) plane.
        for (let k = 0; k < d; k++) {
          const akp = m[k * d + p]!;
          const akq = m[k * d + q]!;
          m[k * d + p] = c * akp - s * akq;
          m[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = m[p * d + k]!;
          const aqk = m[q * d + k]!;
          m[p * d + k] = c * apk - s * aqk;
          m[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const ukp = u[k * d + p]!;
          const ukq = u[k * d + q]!;
          u[k * d + p] = c * ukp - s * ukq;
          u[k * d + q] = s * ukp + c * ukq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = m[i * d + i]!;
  return { values, vectors: u };
}

/** log(sum(exp(v))) without overflow; -Infinity for an empty or all -Infinity input. */
export function logSumExp(v: ArrayLike<number>): number {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < v.length; i++) if (v[i]! > m) m = v[i]!;
  if (m === Number.NEGATIVE_INFINITY) return m;
  let s = 0;
  for (let i = 0; i < v.length; i++) s += Math.exp(v[i]! - m);
  return m + Math.log(s);
}
