import { describe, expect, it } from 'vitest';
import { medianDistance, mmd, rowL2, slicedWasserstein } from './metrics.js';

function gaussianCloud(n: number, d: number, seed: number): Float64Array {
  let s = seed;
  const u = () => {
    s = (Math.imul(s, 22695477) + 1) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  const out = new Float64Array(n * d);
  for (let i = 0; i < out.length; i++)
    out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

describe('distances between sample sets', () => {
  it('sliced W2 of a set and its translate by v is |v| / sqrt(d) (E[(theta.v)^2] = |v|^2 / d)', () => {
    const d = 3;
    const a = gaussianCloud(200, d, 7);
    const v = [0.6, -0.3, 0.9];
    const b = a.map((x, i) => x + v[i % d]!);
    const norm = Math.hypot(...v);
    const sw = slicedWasserstein(a, b, d, 4000, 1);
    expect(sw).toBeCloseTo(norm / Math.sqrt(d), 1);
    expect(Math.abs(sw - norm / Math.sqrt(d)) / (norm / Math.sqrt(d))).toBeLessThan(0.05);
    expect(slicedWasserstein(a, a, d, 16, 1)).toBe(0);
  });

  it('sliced W2 compares sets of different sizes through quantiles', () => {
    // 1-D: W2 between N(0,1) samples and the same samples shifted by 2 is 2, whatever the sizes.
    const a = gaussianCloud(400, 1, 3);
    const b = a.subarray(0, 100).map((x) => x + 2);
    expect(slicedWasserstein(a, b, 1, 1, 1)).toBeGreaterThan(1.7);
    expect(slicedWasserstein(a, b, 1, 1, 1)).toBeLessThan(2.3);
  });

  it('MMD^2 of two point masses at distance r is 2 - 2 exp(-r^2 / 2h^2); 0 for identical sets', () => {
    const a = new Float64Array([0, 0, 0, 0]);
    const b = new Float64Array([3, 4, 3, 4]);
    expect(mmd(a, b, 2, 5)).toBeCloseTo(2 - 2 * Math.exp(-25 / 50), 12);
    const c = gaussianCloud(100, 2, 5);
    expect(mmd(c, c, 2, 1)).toBeCloseTo(0, 12);
    expect(() => mmd(a, b, 2, 0)).toThrow(/bandwidth/);
    expect(medianDistance(b, 2)).toBe(0);
  });

  it('row-wise L2 errors', () => {
    expect(rowL2([0, 0, 1, 1], [3, 4, 1, 1], 2, 2)).toEqual({ meanL2: 2.5, maxL2: 5 });
  });
});
