import { InvalidArgumentError, Random } from '@diffuse/backend';
import { describe, expect, it } from 'vitest';
import { frechetDistance, type GaussianStats, gaussianStats, sqrtmPsd } from './index.js';

const stats = (mean: number[], cov: number[]): GaussianStats => ({
  dim: mean.length,
  mean: Float64Array.from(mean),
  cov: Float64Array.from(cov),
  count: 1000,
});

function mul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const c = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++)
      for (let k = 0; k < d; k++) c[i * d + j]! += a[i * d + k]! * b[k * d + j]!;
  return c;
}

/** A random symmetric positive-definite [d, d] matrix B B^T / d + eps I. */
function randomSpd(d: number, seed: number, eps = 0.1): Float64Array {
  const b = Float64Array.from(Random.seed(seed).normalArray(d * d));
  const a = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      for (let k = 0; k < d; k++) a[i * d + j]! += (b[i * d + k]! * b[j * d + k]!) / d;
      if (i === j) a[i * d + j]! += eps;
    }
  return a;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('sqrtmPsd', () => {
  it('known roots: [[5, 4], [4, 5]] -> [[2, 1], [1, 2]], diagonal, singular [[1, 1], [1, 1]]', () => {
    expect(maxAbsDiff(sqrtmPsd(Float64Array.of(5, 4, 4, 5), 2), [2, 1, 1, 2])).toBeLessThan(1e-14);
    expect(
      maxAbsDiff(
        sqrtmPsd(Float64Array.of(9, 0, 0, 0, 4, 0, 0, 0, 0.25), 3),
        [3, 0, 0, 0, 2, 0, 0, 0, 0.5],
      ),
    ).toBeLessThan(1e-15);
    const h = Math.SQRT1_2;
    expect(maxAbsDiff(sqrtmPsd(Float64Array.of(1, 1, 1, 1), 2), [h, h, h, h])).toBeLessThan(1e-15);
    // [[10, 6], [6, 10]] = ([[3, 1], [1, 3]])^2
    expect(maxAbsDiff(sqrtmPsd(Float64Array.of(10, 6, 6, 10), 2), [3, 1, 1, 3])).toBeLessThan(
      1e-14,
    );
  });

  it('R R = A and R is the symmetric PSD root of a random 12x12 A = S S (S SPD): R = S', () => {
    const d = 12;
    const s = randomSpd(d, 3);
    const a = mul(s, s, d);
    const r = sqrtmPsd(a, d);
    expect(maxAbsDiff(r, s)).toBeLessThan(1e-10);
    expect(maxAbsDiff(mul(r, r, d), a)).toBeLessThan(1e-10);
  });

  it('refuses a matrix of the wrong size', () => {
    expect(() => sqrtmPsd(Float64Array.of(1, 2, 3), 2)).toThrow(InvalidArgumentError);
  });
});

describe('frechetDistance', () => {
  it('1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2', () => {
    expect(frechetDistance(stats([1], [4]), stats([-2], [9]))).toBeCloseTo(9 + 1, 12);
    expect(frechetDistance(stats([0.5], [0.01]), stats([0.5], [1]))).toBeCloseTo(0.81, 12);
  });

  it('commuting (diagonal) covariances: ||dm||^2 + sum (sqrt(a_k) - sqrt(b_k))^2', () => {
    const fd = frechetDistance(
      stats([0, 1, 2], [1, 0, 0, 0, 4, 0, 0, 0, 9]),
      stats([1, 1, 0], [4, 0, 0, 0, 1, 0, 0, 0, 16]),
    );
    expect(fd).toBeCloseTo(1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 4) ** 2, 12);
  });

  it('non-commuting 2x2 covariances: tr S1 + tr S2 - 2 sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))', () => {
    // tr sqrt(M) = sqrt(l1) + sqrt(l2) = sqrt(tr M + 2 sqrt(det M)) for the 2x2 M = S1 S2 (eigenvalues >= 0)
    const s1 = [2, 1, 1, 3];
    const s2 = [1, -0.5, -0.5, 4];
    const trProd = s1[0]! * s2[0]! + s1[1]! * s2[2]! + s1[2]! * s2[1]! + s1[3]! * s2[3]!;
    const det = (s: number[]) => s[0]! * s[3]! - s[1]! * s[2]!;
    const expected =
      5 + 5 - 2 * Math.sqrt(trProd + 2 * Math.sqrt(det(s1) * det(s2))) + (3 ** 2 + 1);
    expect(frechetDistance(stats([1, 2], s1), stats([-2, 1], s2))).toBeCloseTo(expected, 12);
  });

  it('S2 = c^2 S1: (1 - c)^2 tr S1; zero against itself; symmetric in its arguments (random 20-D)', () => {
    const d = 20;
    const s1 = randomSpd(d, 5);
    const m = Array.from(Random.seed(6).normalArray(d));
    let tr = 0;
    for (let k = 0; k < d; k++) tr += s1[k * d + k]!;
    const p = stats(m, Array.from(s1));
    expect(
      frechetDistance(
        p,
        stats(
          m,
          Array.from(s1, (v) => 2.25 * v),
        ),
      ),
    ).toBeCloseTo(0.25 * tr, 9);
    expect(frechetDistance(p, p)).toBeLessThan(1e-9);
    const q = stats(Array.from(Random.seed(7).normalArray(d)), Array.from(randomSpd(d, 8)));
    expect(frechetDistance(p, q)).toBeCloseTo(frechetDistance(q, p), 9);
  });

  it('equals the 2x2 closed form for samples drawn from known Gaussians, within sampling error', () => {
    // x = m + L z with L L^T = S: 40,000 points per side
    const n = 40_000;
    const draw = (m: number[], l: number[], seed: number) => {
      const z = Random.seed(seed).normalArray(2 * n);
      const x = new Float64Array(2 * n);
      for (let i = 0; i < n; i++) {
        x[2 * i] = m[0]! + l[0]! * z[2 * i]!;
        x[2 * i + 1] = m[1]! + l[2]! * z[2 * i]! + l[3]! * z[2 * i + 1]!;
      }
      return x;
    };
    // S1 = [[4, 2], [2, 2]] (L = [[2, 0], [1, 1]]), S2 = [[1, 0], [0, 9]] (L = diag(1, 3))
    const exact = frechetDistance(stats([0, 0], [4, 2, 2, 2]), stats([1, 0], [1, 0, 0, 9]));
    const est = frechetDistance(
      gaussianStats(draw([0, 0], [2, 0, 1, 1], 1), 2),
      gaussianStats(draw([1, 0], [1, 0, 0, 3], 2), 2),
    );
    expect(Math.abs(est - exact)).toBeLessThan(0.05 * exact);
  });

  it('refuses samples of different dimensions', () => {
    expect(() => frechetDistance(stats([0], [1]), stats([0, 0], [1, 0, 0, 1]))).toThrow(
      /dimensions differ: 1 and 2/,
    );
  });
});

describe('gaussianStats', () => {
  it('mean and unbiased covariance (numpy.cov) of a small sample', () => {
    // rows (0, 0), (2, 2), (4, 0): mean (2, 2/3); cov [[4, 0], [0, 4/3]]
    const s = gaussianStats(Float64Array.of(0, 0, 2, 2, 4, 0), 2);
    expect(Array.from(s.mean)).toEqual([2, 2 / 3]);
    expect(maxAbsDiff(s.cov, [4, 0, 0, 4 / 3])).toBeLessThan(1e-15);
    expect(s.count).toBe(3);
  });

  it('refuses one point, ragged data and non-finite values', () => {
    expect(() => gaussianStats([1, 2], 2)).toThrow(/n >= 2/);
    expect(() => gaussianStats([1, 2, 3], 2)).toThrow(InvalidArgumentError);
    expect(() => gaussianStats([1, Number.NaN, 3, 4], 2)).toThrow(/non-finite/);
  });
});
