import { DiffuseError, initBackend, Random } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import { DiscreteSchedule } from '@diffuse/schedules';
import { beforeAll, describe, expect, it } from 'vitest';
import { warpedSchedule } from './gaussian-fixture.js';
import {
  denoisingLoss,
  discreteTimestepSampler,
  edmLogNormalSampler,
  elboWeighting,
  importanceSampler,
  LossError,
  meanAndStandardError,
  minSNRWeighting,
  uniformLogSNRSampler,
  uniformTimeSampler,
  uniformTimes,
  uniformWeighting,
} from './index.js';

/** Kolmogorov-Smirnov distance between a sample and a CDF. */
function ksDistance(values: ArrayLike<number>, cdf: (x: number) => number): number {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(sorted[i]!);
    d = Math.max(d, Math.abs(f - i / n), Math.abs(f - (i + 1) / n));
  }
  return d;
}
/** KS critical value at the 0.1% level. */
const ks = (n: number) => 1.95 / Math.sqrt(n);

describe('uniform times', () => {
  it('iid: U(0, 1)', () => {
    const u = uniformTimes(20000, Random.seed(1));
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(ksDistance(u, (x) => x)).toBeLessThan(ks(u.length));
  });

  it('antithetic: pairs (u, 1 - u), each marginally uniform', () => {
    const u = uniformTimes(1001, Random.seed(2), 'antithetic');
    for (let i = 0; i < 500; i++) expect(u[i]! + u[1000 - i]!).toBeCloseTo(1, 12);
    expect(ksDistance(u, (x) => x)).toBeLessThan(ks(u.length));
  });

  it('low-discrepancy (VDM): a shifted grid with spacing exactly 1/n', () => {
    const n = 64;
    const u = Float64Array.from(uniformTimes(n, Random.seed(3), 'low-discrepancy')).sort();
    for (let i = 1; i < n; i++) expect(u[i]! - u[i - 1]!).toBeCloseTo(1 / n, 12);
    // Marginally uniform: the shift is U(0, 1/n) across batches.
    const firsts = Array.from(
      { length: 4000 },
      (_, k) => uniformTimes(8, Random.seed(100 + k), 'low-discrepancy')[3]!,
    );
    expect(ksDistance(firsts, (x) => x)).toBeLessThan(ks(firsts.length));
  });
});

describe('noise-level samplers report the density they draw with', () => {
  it("uniform t through a schedule: p(lambda) = 1 / |lambda'(t)|, and the law of lambda is that of lambda(U)", () => {
    const schedule = warpedSchedule(
      -8,
      6,
      (t) => t * t * 0.5 + 0.5 * t,
      (t) => t + 0.5,
    );
    const { t, logSNR, density } = uniformTimeSampler(schedule).sample(5000, Random.seed(4));
    for (let i = 0; i < 50; i++) {
      expect(logSNR[i]).toBeCloseTo(schedule.logSNR(t![i]!), 12);
      expect(density[i]).toBeCloseTo(-1 / schedule.dLogSNRdt(t![i]!), 12);
    }
    // P(lambda <= l) = P(t >= h^-1((6 - l)/14)) with h(t) = (t^2 + t)/2.
    const cdf = (l: number) => 1 - (-1 + Math.sqrt(1 + 8 * ((6 - l) / 14))) / 2;
    expect(ksDistance(logSNR, cdf)).toBeLessThan(ks(5000));
  });

  it('uniform logSNR', () => {
    const { logSNR, density } = uniformLogSNRSampler(-3, 5).sample(4000, Random.seed(5));
    expect(density.every((p) => p === 1 / 8)).toBe(true);
    expect(ksDistance(logSNR, (l) => (l + 3) / 8)).toBeLessThan(ks(4000));
  });

  it.each(['iid', 'antithetic', 'low-discrepancy'] as const)(
    "EDM's log-normal (%s): ln sigma = -lambda/2 ~ N(-1.2, 1.2^2)",
    (sampling) => {
      const n = 20000;
      const { logSNR, density } = edmLogNormalSampler({ sampling }).sample(n, Random.seed(6));
      const lnSigma = Array.from(logSNR, (l) => -l / 2);
      const { mean, standardError } = meanAndStandardError(lnSigma);
      expect(Math.abs(mean + 1.2)).toBeLessThan(4 * standardError);
      const sd = Math.sqrt(lnSigma.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
      expect(Math.abs(sd - 1.2)).toBeLessThan(4 * (1.2 / Math.sqrt(2 * n)));
      logSNR.forEach((l, i) => {
        if (i < 50)
          expect(density[i]).toBeCloseTo(
            Math.exp(-0.5 * ((l - 2.4) / 2.4) ** 2) / (2.4 * Math.sqrt(2 * Math.PI)),
            12,
          );
      });
    },
  );

  it('importance sampling: exact for a piecewise-linear f, density normalised, estimates unbiased', () => {
    // f(l) = l - lo on [lo, hi]: p(l) = 2 (l - lo) / (hi - lo)^2, CDF ((l - lo)/(hi - lo))^2.
    const lo = -2;
    const hi = 6;
    const sampler = importanceSampler((l) => l - lo, {
      logSNRMin: lo,
      logSNRMax: hi,
      gridSize: 16,
    });
    const n = 20000;
    const { logSNR, density } = sampler.sample(n, Random.seed(7));
    expect(ksDistance(logSNR, (l) => ((l - lo) / (hi - lo)) ** 2)).toBeLessThan(ks(n));
    logSNR.forEach((l, i) => {
      expect(density[i]).toBeCloseTo((2 * (l - lo)) / (hi - lo) ** 2, 9);
    });
    // A smooth f on a grid: E[g / p] = int g exactly (whatever p is, as long as it is the one reported).
    const smooth = importanceSampler((l) => 1 / Math.cosh(l / 2), {
      logSNRMin: -15,
      logSNRMax: 15,
      gridSize: 64,
    });
    const s = smooth.sample(n, Random.seed(8));
    const g = (l: number) => Math.exp(-((l - 1) ** 2) / 8);
    const est = meanAndStandardError(Array.from(s.logSNR, (l, i) => g(l) / s.density[i]!));
    const exact = Math.sqrt(8 * Math.PI); // the Gaussian integral (the tails beyond +-15 are < 1e-20)
    expect(Math.abs(est.mean - exact)).toBeLessThan(4 * est.standardError);
  });

  it('importance sampling proportional to a weighting (min-SNR-5 on x0: min(e^lambda, 5))', async () => {
    await initBackend('wasm');
    const sampler = importanceSampler(minSNRWeighting(5), { logSNRMin: -4, logSNRMax: 4 });
    const { logSNR, density } = sampler.sample(20000, Random.seed(12));
    // Z = int_{-4}^{4} min(e^l, 5) dl = (5 - e^-4) + 5 (4 - ln 5)
    const z = 5 - Math.exp(-4) + 5 * (4 - Math.log(5));
    const cdf = (l: number) =>
      (l < Math.log(5) ? Math.exp(l) - Math.exp(-4) : 5 - Math.exp(-4) + 5 * (l - Math.log(5))) / z;
    expect(ksDistance(logSNR, cdf)).toBeLessThan(ks(20000));
    logSNR.forEach((l, i) => {
      expect(Math.abs(density[i]! - Math.min(Math.exp(l), 5) / z)).toBeLessThan(2e-3);
    });
    expect(() => importanceSampler(elboWeighting(), { logSNRMin: -1, logSNRMax: 1 })).toThrow(
      /depends on the sampler's own density/,
    );
  });

  it('importance sampling by low-discrepancy uniforms keeps the law', () => {
    const sampler = importanceSampler((l) => Math.exp(-Math.abs(l)), {
      logSNRMin: -5,
      logSNRMax: 5,
      sampling: 'low-discrepancy',
    });
    const all: number[] = [];
    for (let k = 0; k < 50; k++) all.push(...sampler.sample(64, Random.seed(k)).logSNR);
    const z = 2 * (1 - Math.exp(-5));
    const cdf = (l: number) => (l < 0 ? Math.exp(l) - Math.exp(-5) : z / 2 + 1 - Math.exp(-l)) / z;
    expect(ksDistance(all, cdf)).toBeLessThan(0.01);
  });
});

describe('discrete timesteps (Ho et al. 2020, Algorithm 1)', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('draws i ~ U{0..T-1} and reads lambda from the table; a zero-SNR end is drawn at the floor', () => {
    const table = DiscreteSchedule.fromConfig({ numTrainTimesteps: 50, rescaleBetasZeroSnr: true });
    expect(table.logSNRs[49]).toBe(Number.NEGATIVE_INFINITY);
    const { timesteps, logSNR, density } = discreteTimestepSampler(table.logSNRs).sample(
      20000,
      Random.seed(9),
    );
    expect(density).toBeUndefined();
    const counts = new Array(50).fill(0);
    timesteps!.forEach((i, k) => {
      counts[i]++;
      if (i < 49) expect(logSNR[k]).toBe(table.logSNRs[i]);
      else expect(logSNR[k]).toBeCloseTo(Math.log(2 ** -24) - Math.log1p(-(2 ** -24)), 12);
    });
    // Pearson chi-square with 49 degrees of freedom: 0.1% critical value 85.4.
    const chi2 = counts.reduce((a, c) => a + (c - 400) ** 2 / 400, 0);
    expect(chi2).toBeLessThan(85.4);
  });

  it('uniform v-MSE over a DDPM table, including the zero-SNR step, matches the Gaussian closed form', async () => {
    const s = 0.5;
    const gm = GaussianMixture.gaussian(
      [0.1, 0.2],
      [
        [s * s, 0],
        [0, s * s],
      ],
    );
    const table = DiscreteSchedule.fromConfig({
      numTrainTimesteps: 100,
      rescaleBetasZeroSnr: true,
    });
    const rng = Random.seed(3);
    const x0 = gm.sample(8192, rng);
    const sample = discreteTimestepSampler(table.logSNRs).sample(8192, rng);
    const loss = await denoisingLoss(gm.denoiser('v'), x0, {
      rng,
      sample,
      weighting: uniformWeighting('v'),
    }).data();
    x0.dispose();
    // E[||v - v_hat||^2 / d | lambda] = (1 + SNR) s^2 / (1 + SNR s^2).
    const diff = Array.from(loss, (v, i) => {
      const snr = Math.exp(sample.logSNR[i]!);
      return v - ((1 + snr) * s * s) / (1 + snr * s * s);
    });
    const est = meanAndStandardError(diff);
    expect(Math.abs(est.mean)).toBeLessThan(4 * est.standardError);
    // The ELBO weighting needs a density, which a discrete table does not have.
    expect(() =>
      denoisingLoss(gm.denoiser('v'), gm.sample(4, rng), {
        rng,
        sampler: discreteTimestepSampler(table.logSNRs),
        weighting: elboWeighting(),
      }),
    ).toThrow(/needs the density/);
  });
});

describe('bad input gives typed errors', () => {
  it.each([
    [
      'n = 0',
      () => uniformTimes(0, Random.seed(0)),
      /batch size must be a positive integer, got number 0/,
    ],
    ['not a Random', () => uniformTimes(4, Math as never), /rng must be a Random/],
    [
      'an unknown sampling',
      () => uniformTimes(4, Random.seed(0), 'sobol' as never),
      /unknown time sampling 'sobol'/,
    ],
    [
      'an increasing schedule',
      () =>
        uniformTimeSampler(
          warpedSchedule(
            5,
            -5,
            (t) => t,
            () => 1,
          ),
        ),
      /decrease from t = 0 to t = 1/,
    ],
    [
      'not a schedule',
      () => uniformTimeSampler({} as never),
      /needs a schedule with logSNR\(t\) and dLogSNRdt\(t\)/,
    ],
    [
      'an empty logSNR range',
      () => uniformLogSNRSampler(3, 3),
      /logSNRMin < logSNRMax, got \[3, 3\]/,
    ],
    [
      'P_std = 0',
      () => edmLogNormalSampler({ pStd: 0 }),
      /P_std must be positive and finite, got 0/,
    ],
    [
      'a negative importance function',
      () => importanceSampler((l) => l, { logSNRMin: -1, logSNRMax: 1 }),
      /f\(-1\) = -1; the function must be finite and non-negative/,
    ],
    [
      'an importance function that is zero',
      () => importanceSampler(() => 0, { logSNRMin: -1, logSNRMax: 1 }),
      /integrates to 0/,
    ],
    [
      'an infinite importance range',
      () => importanceSampler(() => 1, { logSNRMin: -Infinity, logSNRMax: 1 }),
      /must be finite/,
    ],
  ])('%s', (_, fn, message) => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LossError);
    expect(err).toBeInstanceOf(DiffuseError);
    expect((err as Error).message).toMatch(message);
  });
});
