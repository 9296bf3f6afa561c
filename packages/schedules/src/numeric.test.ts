import { describe, expect, it } from 'vitest';
import {
  betaQuantile,
  betaSigmas,
  interp,
  numpyArange,
  numpyLinspace,
  regularizedIncompleteBeta,
  roundHalfEven,
  ScheduleError,
  torchLinspace,
  torchLinspaceFloat32,
} from './index.js';

describe('NumPy / PyTorch building blocks', () => {
  it('roundHalfEven is numpy.round', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, 166.5, 3].map(roundHalfEven)).toEqual([
      0, 2, 2, -0, -2, 2, 3, 166, 3,
    ]);
  });

  it('numpyArange: length ceil((stop - start) / step)', () => {
    expect(Array.from(numpyArange(1000, 0, -250))).toEqual([1000, 750, 500, 250]);
    expect(numpyArange(1000, 0, -1000 / 3).length).toBe(3);
    expect(numpyArange(0, 1, 0.3).length).toBe(4);
    expect(() => numpyArange(0, 1, 0)).toThrow(ScheduleError);
  });

  it('numpyLinspace ends exactly at stop; torchLinspace is symmetric from both ends', () => {
    const a = numpyLinspace(0, 999, 7);
    expect(a[0]).toBe(0);
    expect(a[6]).toBe(999);
    expect(a[3]).toBeCloseTo(499.5, 12);
    const t = torchLinspace(-3, 3, 11);
    for (let i = 0; i < 11; i++) expect(t[i]).toBeCloseTo(-3 + 0.6 * i, 14);
    expect(t[10]).toBe(3);
    expect(() => numpyLinspace(0, 1, 0)).toThrow(/positive integer count/);
  });

  it('torchLinspaceFloat32 returns float32 values within 1 ulp of the exact line, ends exact', () => {
    const n = 1008; // exercises both the vector loop and the pairs boundary
    const r = torchLinspaceFloat32(1e-4, 0.02, n);
    expect(r[0]).toBe(Math.fround(1e-4));
    expect(r[n - 1]).toBe(Math.fround(0.02));
    for (let i = 0; i < n; i++) {
      expect(Math.fround(r[i]!)).toBe(r[i]);
      const exact = 1e-4 + ((0.02 - 1e-4) * i) / (n - 1);
      expect(Math.abs(r[i]! - exact)).toBeLessThan(4 * 2 ** -24 * 0.02);
    }
  });

  it('interp is numpy.interp (clamped, linear)', () => {
    const xp = [0, 1, 2];
    const fp = [10, 20, 40];
    expect(interp(-1, xp, fp)).toBe(10);
    expect(interp(0.5, xp, fp)).toBe(15);
    expect(interp(1.25, xp, fp)).toBe(25);
    expect(interp(2, xp, fp)).toBe(40);
    expect(interp(5, xp, fp)).toBe(40);
    expect(() => interp(0, [], [])).toThrow(ScheduleError);
  });
});

describe('the Beta distribution (beta sigmas)', () => {
  // scipy 1.10: scipy.stats.beta.cdf / .ppf
  it("regularizedIncompleteBeta is SciPy's beta CDF", () => {
    expect(regularizedIncompleteBeta(0.3, 0.6, 0.6)).toBeCloseTo(0.35252651177214367, 14);
    expect(regularizedIncompleteBeta(0.01, 2.5, 0.7)).toBeCloseTo(5.631075838213447e-6, 18);
    expect(regularizedIncompleteBeta(0.5, 0.6, 0.6)).toBeCloseTo(0.5, 14);
    expect(() => regularizedIncompleteBeta(0.5, 0, 1)).toThrow(ScheduleError);
  });
  it("betaQuantile is SciPy's beta.ppf at 1 - linspace(0, 1, 10)", () => {
    const scipy = [
      1.0, 0.9529081824509575, 0.8543989028585846, 0.7245867092223766, 0.5768252368393632,
      0.42317476316063685, 0.2754132907776235, 0.14560109714141556, 0.047091817549042465, 0.0,
    ];
    numpyLinspace(0, 1, 10).forEach((r, i) => {
      expect(Math.abs(betaQuantile(1 - r, 0.6, 0.6) - scipy[i]!)).toBeLessThan(1e-13);
    });
    expect(() => betaQuantile(1.5, 0.6, 0.6)).toThrow(ScheduleError);
  });
  it('betaSigmas spans sigma_max to sigma_min with 0 appended', () => {
    const s = betaSigmas(10, 0.03, 14.6);
    expect(s.length).toBe(11);
    expect(s[0]).toBeCloseTo(14.6, 12);
    expect(s[9]).toBeCloseTo(0.03, 12);
    expect(s[10]).toBe(0);
    expect(s[1]).toBeCloseTo(0.03 + 0.9529081824509575 * (14.6 - 0.03), 12);
  });
});
