import { assertNoLeaksSync, initBackend, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  addNoise,
  DiscreteSchedule,
  ddpmPosterior,
  posterior,
  posteriorMean,
  ScheduleError,
  transition,
  VEGeometricSchedule,
  VPLinearSchedule,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/**
 * The posterior of a linear-Gaussian pair, by brute force: (x_s, x_t) given x_0 is jointly Gaussian with
 * Cov(x_s, x_t) = alpha_{t|s} sigma_s^2, so the conditional mean/variance follow from Schur complements.
 */
function bruteForcePosterior(aS: number, sS: number, aT: number, sT: number) {
  const aTS = aT / aS;
  const cov = aTS * sS * sS; // Cov(x_s, x_t | x_0)
  const varT = sT * sT;
  // E[x_s | x_t, x_0] = aS x0 + cov / varT (x_t - aT x0)
  return {
    meanXt: cov / varT,
    meanX0: aS - (cov / varT) * aT,
    variance: sS * sS - (cov * cov) / varT,
  };
}

describe('forward process closed forms', () => {
  it('addNoise is alpha x0 + sigma eps, with number or per-example tensor levels, no leaks', async () => {
    const rng = Random.seed(1);
    const x0 = rng.normal([4, 3]);
    const eps = rng.normal([4, 3]);
    const a = assertNoLeaksSync(() => addNoise(x0, eps, { alpha: 0.8, sigma: 0.6 }));
    const alpha = tf.tensor2d([[1], [0.5], [0.2], [0]]);
    const sigma = tf.tensor2d([[0], [0.5], [0.9], [1]]);
    const b = addNoise(x0, eps, { alpha, sigma });
    const [xv, ev, av, bv] = await Promise.all([x0.data(), eps.data(), a.data(), b.data()]);
    for (let i = 0; i < 12; i++) {
      expect(av[i]).toBeCloseTo(0.8 * xv[i]! + 0.6 * ev[i]!, 5);
      const r = Math.floor(i / 3);
      expect(bv[i]).toBeCloseTo([1, 0.5, 0.2, 0][r]! * xv[i]! + [0, 0.5, 0.9, 1][r]! * ev[i]!, 5);
    }
    expect(() => addNoise(x0, tf.zeros([4, 2]), { alpha: 1, sigma: 0 })).toThrow(
      /x0 has shape \[4,3\] but noise has shape \[4,2\]/,
    );
    tf.dispose([x0, eps, a, b, alpha, sigma]);
  });

  const pairs: [number, number][] = [
    [0.1, 0.3],
    [0.5, 0.5001],
    [0.02, 0.95],
  ];
  it.each([
    ['vp-linear', new VPLinearSchedule()],
    ['ve', new VEGeometricSchedule()],
  ] as const)('posterior q(x_s | x_t, x_0) matches the Gaussian conditional (%s)', (_n, sched) => {
    for (const [s, t] of pairs) {
      const ls = sched.level(s);
      const lt = sched.level(t);
      const p = posterior(ls, lt);
      const q = bruteForcePosterior(ls.alpha, ls.sigma, lt.alpha, lt.sigma);
      expect(p.meanXt).toBeCloseTo(q.meanXt, 10);
      expect(p.meanX0).toBeCloseTo(q.meanX0, 10);
      // the brute force cancels badly when s ~ t; compare relative to the scale of sigma_s^2
      expect(Math.abs(p.variance - q.variance)).toBeLessThan(1e-9 * ls.sigma ** 2);
      const tr = transition(ls, lt);
      expect(tr.alphaTS).toBeCloseTo(lt.alpha / ls.alpha, 14);
      expect(tr.varianceTS).toBeCloseTo(lt.sigma ** 2 - tr.alphaTS ** 2 * ls.sigma ** 2, 9);
      // consistency: var(x_t | x_0) = alpha_{t|s}^2 sigma_s^2 + sigma_{t|s}^2
      expect(tr.alphaTS ** 2 * ls.sigma ** 2 + tr.varianceTS).toBeCloseTo(lt.sigma ** 2, 10);
    }
  });

  it('is accurate when s and t are very close (expm1), where the naive formula cancels', () => {
    const sched = new VPLinearSchedule();
    const ls = sched.level(0.5);
    const lt = sched.level(0.5 + 1e-9);
    const p = posterior(ls, lt);
    // variance = sigma_s^2 (1 - SNR_t/SNR_s) ~ sigma_s^2 * (-dlambda/dt) * 1e-9
    const expected = ls.sigma ** 2 * -sched.dLogSNRdt(0.5) * 1e-9;
    expect(p.variance / expected).toBeCloseTo(1, 5);
  });

  it('edge levels: s = 0 (clean) and alpha_t = 0 (zero terminal SNR)', () => {
    const clean = posterior({ alpha: 1, sigma: 0 }, { alpha: 0.6, sigma: 0.8 });
    expect(clean).toEqual({ meanXt: 0, meanX0: 1, variance: 0 });
    const pure = posterior({ alpha: 0.6, sigma: 0.8 }, { alpha: 0, sigma: 1 });
    expect(pure.meanXt).toBe(0);
    expect(pure.meanX0).toBeCloseTo(0.6, 15);
    expect(pure.variance).toBeCloseTo(0.64, 15);
  });

  it('DDPM posterior from betas equals the general posterior at (i-1, i), and posteriorMean uses it', async () => {
    const s = DiscreteSchedule.fromConfig({
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
    });
    for (const i of [1, 10, 500, 999]) {
      const d = ddpmPosterior(s, i);
      const g = posterior(s.levelAt(i - 1), s.levelAt(i));
      // float32 tables: abar_i = abar_{i-1} (1 - beta_i) holds only to float32 rounding, which is
      // ~1e-7 / beta_i ~ 1e-4 relative in the posterior at small i
      for (const k of ['meanX0', 'meanXt', 'variance'] as const) {
        expect(Math.abs(d[k] - g[k])).toBeLessThan(2e-4 * Math.abs(g[k]));
      }
    }
    const xt = tf.tensor1d([1, -2]);
    const x0 = tf.tensor1d([0.5, 0.25]);
    const m = assertNoLeaksSync(() => posteriorMean(x0, xt, s.levelAt(99), s.levelAt(100)));
    const p = posterior(s.levelAt(99), s.levelAt(100));
    const mv = await m.data();
    expect(mv[0]).toBeCloseTo(p.meanXt * 1 + p.meanX0 * 0.5, 5);
    expect(mv[1]).toBeCloseTo(p.meanXt * -2 + p.meanX0 * 0.25, 5);
    tf.dispose([xt, x0, m]);
  });

  it('bad levels give a ScheduleError that says what was wrong', () => {
    const a = { alpha: 0.9, sigma: 0.3 };
    const b = { alpha: 0.5, sigma: 0.8 };
    expect(() => posterior(b, a)).toThrow(/level s must be less noisy than t/);
    expect(() => posterior(a, { alpha: 1, sigma: 0 })).toThrow(/sigma_t > 0/);
    expect(() => posterior({ alpha: Number.NaN, sigma: 1 }, b)).toThrow(ScheduleError);
    expect(() => ddpmPosterior(DiscreteSchedule.fromConfig(), 0)).toThrow(
      /index 0 must be an integer in \[1, 999\]/,
    );
  });
});
