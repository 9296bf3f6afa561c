/** The probability-flow ODE: adaptive sampling against a tight reference solve, and log-likelihoods against closed forms. */
import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { logLikelihood, sample } from './index.js';
import { flat, loadRef, maxRelErr } from './testing/refs.js';

interface KRefs {
  mixtures: { A: { weights: number[]; means: number[][]; covs: number[][][] } };
  noise: { A: { data: number[][] } };
  exact: { A: { 'end_at_sigma_min_0.002': number[][] } };
}
const refs = loadRef<KRefs>('kdiffusion/trajectories.json');
let mixA: GaussianMixture;
let gauss: GaussianMixture;
const MU = [0.5, -1];
const VAR = [0.09, 0.36];
const SMIN = 1e-3;
/** Large enough that the prior N(0, SMAX^2) differs from the true p_SMAX by < 1e-3 nats at these points. */
const SMAX = 2000;

beforeAll(async () => {
  await initBackend('wasm');
  const A = refs.mixtures.A;
  mixA = new GaussianMixture({ weights: A.weights, means: A.means, covs: A.covs });
  gauss = new GaussianMixture({
    weights: [1],
    means: [MU],
    covs: [
      [
        [VAR[0]!, 0],
        [0, VAR[1]!],
      ],
    ],
  });
});

describe('probability-flow ODE with dopri5', () => {
  it('lands on the DOP853 reference solve (rtol = atol = 1e-12) from sigma 80 to 0.002 on mixture A', async () => {
    const noise = tf.tensor(refs.noise.A.data);
    const out = await sample(mixA.denoiser('x0'), {
      sampler: 'ode_dopri5',
      samplerOptions: { rtol: 1e-6, atol: 1e-6 },
      sigmas: [80, 0.002],
      embedding: 've',
      noise,
    });
    const err = maxRelErr(await out.data(), flat(refs.exact.A['end_at_sigma_min_0.002']));
    tf.dispose([noise, out]);
    expect(err).toBeLessThan(2e-4);
  });

  it('tighter tolerances get closer', async () => {
    const errs: number[] = [];
    for (const tol of [1e-2, 1e-5]) {
      const noise = tf.tensor(refs.noise.A.data);
      const out = await sample(mixA.denoiser('epsilon'), {
        sampler: 'ode_dopri5',
        samplerOptions: { rtol: tol, atol: tol },
        sigmas: [80, 0.002],
        noise,
      });
      errs.push(maxRelErr(await out.data(), flat(refs.exact.A['end_at_sigma_min_0.002'])));
      tf.dispose([noise, out]);
    }
    expect(errs[1]!).toBeLessThan(errs[0]! / 10);
  });
});

/** log N(x; mu, diag(var)) */
const logNormal = (x: number[], mu: number[], v: number[]) =>
  x.reduce(
    (acc, xi, k) => acc - 0.5 * Math.log(2 * Math.PI * v[k]!) - (xi - mu[k]!) ** 2 / (2 * v[k]!),
    0,
  );

describe('logLikelihood', () => {
  const pts = [
    [0.5, -1],
    [0.9, -0.2],
    [0.1, -1.8],
    [0.7, -1.3],
  ];

  it('Gaussian data: log N(x0; mu, S + sigmaMin^2 I), exact trace and Rademacher probes', async () => {
    const x0 = tf.tensor(pts);
    for (const trace of ['exact', 'hutchinson'] as const) {
      const r = await assertNoLeaks(() =>
        logLikelihood(gauss.denoiser('epsilon'), x0, {
          trace,
          sigmaMin: SMIN,
          sigmaMax: SMAX,
          rtol: 1e-5,
          atol: 1e-5,
        }),
      );
      pts.forEach((p, b) => {
        const want = logNormal(
          p,
          MU,
          VAR.map((v) => v + SMIN * SMIN),
        );
        expect(Math.abs(r.nats[b]! - want)).toBeLessThan(2e-3);
        expect(r.bitsPerDim[b]!).toBeCloseTo(-r.nats[b]! / (2 * Math.LN2), 10);
      });
    }
    x0.dispose();
  });

  it('Gaussian probes: the estimate is exactly what v^T J v integrates to', async () => {
    // For diagonal covariances J = dD/dx is diagonal, so Hutchinson's estimate replaces the trace
    // by sum_i v_i^2 J_ii, and the integral of J_ii = var_i / (var_i + sigma^2) over log sigma is
    // I_i = [u - log(var_i + e^{2u}) / 2] between the ends: exact minus estimate = sum_i (mean_p v_pi^2 - 1) I_i.
    const x0 = tf.tensor(pts);
    const opts = { sigmaMin: SMIN, sigmaMax: SMAX, rtol: 1e-5, atol: 1e-5 };
    const r = await logLikelihood(gauss.denoiser('x0'), x0, {
      ...opts,
      trace: 'hutchinson',
      probe: 'gaussian',
      probes: 2,
      seed: 3,
    });
    const e = await logLikelihood(gauss.denoiser('x0'), x0, { ...opts, trace: 'exact' });
    x0.dispose();
    const rng = Random.seed(3);
    const probes = [rng.normalArray(8), rng.normalArray(8)];
    const [u0, u1] = [Math.log(SMIN), Math.log(SMAX)];
    const I = VAR.map(
      (v) =>
        u1 - 0.5 * Math.log(v + Math.exp(2 * u1)) - (u0 - 0.5 * Math.log(v + Math.exp(2 * u0))),
    );
    pts.forEach((_, b) => {
      const want = I.reduce(
        (acc, Ii, i) =>
          acc + ((probes[0]![b * 2 + i]! ** 2 + probes[1]![b * 2 + i]! ** 2) / 2 - 1) * Ii,
        0,
      );
      expect(Math.abs(want)).toBeGreaterThan(0.05); // the probes really are random
      expect(Math.abs(e.nats[b]! - r.nats[b]! - want)).toBeLessThan(3e-3);
    });
  });

  it('Gaussian mixture: matches the true log density', async () => {
    const x = [
      [-1.5, 0.1],
      [1.0, 1.1],
      [1.2, -1.4],
      [0, 0],
    ];
    const x0 = tf.tensor(x);
    const r = await logLikelihood(mixA.denoiser('epsilon'), x0, {
      sigmaMin: SMIN,
      sigmaMax: SMAX,
      rtol: 1e-5,
      atol: 1e-5,
    });
    x0.dispose();
    const want = mixA.logProbArray(new Float64Array(x.flat()), 1, SMIN);
    x.forEach((_, b) => {
      expect(Math.abs(r.nats[b]! - want[b]!)).toBeLessThan(5e-3);
    });
    expect(r.nfe).toBeGreaterThan(6);
  });
});
