/**
 * The conformance suite: every registered sampler (`listSamplers()`) is checked here automatically,
 * so a contributor's new sampler needs no new tests.
 *
 * - Order of convergence on 1-D Gaussian data N(mu, s0^2), whose probability-flow ODE has the closed
 *   form x(s') - mu = (x(s) - mu) sqrt((s0^2 + s'^2) / (s0^2 + s^2)) in VE variables: the error must
 *   fall like h^order (deterministic samplers declaring an `order`).
 * - Exactness on a point mass (D = mu): every state lies on x_i = mu + (x_0 - mu) sigma_i / sigma_0
 *   (deterministic samplers) and every sampler ends exactly at mu.
 * - Stochastic samplers on Gaussian data: each run is an affine map of its Gaussian inputs, so its
 *   output is Gaussian with the mean and variance of that linear-Gaussian recursion, read off from
 *   unit probes of the sampler itself. Monte Carlo samples must match those moments (the noise is
 *   fresh, independent and correctly scaled) and the moments must approach N(mu, s0^2) as steps grow.
 * - No leaked tensors over a whole run (also when aborted or broken off); same seed, same output.
 */
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { type Denoiser, GaussianMixture } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { listSamplers, sample, sampleSteps } from './index.js';

const MU = 1;
const S0 = 0.5;
let gauss: Denoiser;
beforeAll(async () => {
  await initBackend('wasm');
  gauss = new GaussianMixture({ weights: [1], means: [[MU]], covs: [[[S0 * S0]]] }).denoiser(
    'epsilon',
  );
});

const samplers = listSamplers();
const deterministic = samplers.filter((s) => !s.stochastic);
const stochastic = samplers.filter((s) => s.stochastic);
const geometric = (n: number, hi: number, lo: number) =>
  Array.from({ length: n + 1 }, (_, k) =>
    Math.exp(Math.log(hi) + (k / n) * (Math.log(lo) - Math.log(hi))),
  );

/** The closed-form probability-flow ODE map of N(MU, S0^2) data, VE variables. */
const flow = (x: number, s: number, s2: number) =>
  MU + (x - MU) * Math.sqrt((S0 * S0 + s2 * s2) / (S0 * S0 + s * s));

describe.each(deterministic.filter((s) => s.order !== undefined).map((s) => [s.name, s] as const))(
  'order of convergence: %s',
  (_name, def) => {
    it(`error falls like h^${def.order}`, async () => {
      const z = [-1.5, -0.3, 0.4, 1.2];
      const [hi, lo] = [20, 0.05];
      const errs: number[] = [];
      const ns = [8, 16, 32, 64, 128];
      for (const n of ns) {
        const noise = tf.tensor(z, [4, 1]);
        const out = await sample(gauss, {
          sampler: def.name,
          samplerOptions: def.conformance?.samplerOptions,
          sigmas: geometric(n, hi, lo),
          noise,
          checkFinite: false,
        });
        const v = await out.data();
        tf.dispose([noise, out]);
        const alpha = 1 / Math.sqrt(1 + lo * lo); // the result is VP-scaled at the last level
        errs.push(Math.max(...z.map((zk, k) => Math.abs(v[k]! / alpha - flow(zk * hi, hi, lo)))));
      }
      // Slopes between consecutive refinements, above the float32 floor and past the pre-asymptotic range.
      const slopes: number[] = [];
      for (let k = 0; k + 1 < errs.length; k++) {
        if (errs[k]! < 0.05 && errs[k + 1]! > 4e-6) slopes.push(Math.log2(errs[k]! / errs[k + 1]!));
      }
      expect(
        slopes.length,
        `errors ${errs.map((e) => e.toExponential(2)).join(', ')}`,
      ).toBeGreaterThan(0);
      const mean = slopes.reduce((a, b) => a + b, 0) / slopes.length;
      expect(mean, `errors ${errs.map((e) => e.toExponential(2)).join(', ')}`).toBeGreaterThan(
        def.order! - 0.35,
      );
    });
  },
);

/** A point mass at MU, predicting epsilon (so the conversion path is exercised too). */
const pointMass: Denoiser = {
  prediction: 'epsilon',
  predict: (x, level) =>
    tf.tidy(() => tf.div(tf.sub(x, tf.mul(level.alpha as number, MU)), level.sigma as number)),
};

describe.each(samplers.map((s) => [s.name, s] as const))('point mass: %s', (_name, def) => {
  it('ends exactly at the point (and, deterministic, stays on the straight ray)', async () => {
    const sigmas = geometric(12, 30, 0.02);
    sigmas.push(0);
    const z = [-1.2, 0.3, 2.0];
    const rayErrs: number[] = [];
    const noise = tf.tensor(z, [3, 1]);
    const out = await sample(pointMass, {
      sampler: def.name,
      samplerOptions: def.conformance?.samplerOptions,
      sigmas,
      noise,
      seed: 5,
      onStep: async (info) => {
        if (def.stochastic) return;
        const v = await info.x.data();
        const s = info.sigma;
        rayErrs.push(
          ...z.map(
            (zk, k) =>
              Math.abs(v[k]! - (MU + (zk * sigmas[0]! - MU) * (s / sigmas[0]!))) /
              (1 + Math.abs(v[k]!)),
          ),
        );
      },
    });
    const v = Array.from(await out.data());
    tf.dispose([noise, out]);
    for (const x of v) expect(Math.abs(x - MU)).toBeLessThan(1e-5);
    if (!def.stochastic) expect(Math.max(...rayErrs)).toBeLessThan(1e-5);
  });
});

/** Final mean and variance of a stochastic sampler, read off its affine structure with unit probes. */
async function probeMoments(
  def: ReturnType<typeof listSamplers>[number],
  sigmas: number[],
): Promise<{ mean: number; variance: number; requests: number }> {
  let count = 0;
  const dry = await sample(gauss, {
    sampler: def.name,
    samplerOptions: def.conformance?.samplerOptions,
    sigmas,
    noise: tf.zeros([1, 1]),
    noiseSampler: (_s, _n, shape) => {
      count++;
      return tf.zeros([...shape]);
    },
  });
  dry.dispose();
  const B = count + 2;
  const init = tf.tensor(
    Array.from({ length: B }, (_, r) => (r === 1 ? 1 : 0)),
    [B, 1],
  );
  let k = 0;
  const out = await sample(gauss, {
    sampler: def.name,
    samplerOptions: def.conformance?.samplerOptions,
    sigmas,
    noise: init,
    noiseSampler: (_s, _n, shape) => {
      const row = 2 + k++;
      return tf.tensor(
        Array.from({ length: shape[0]! }, (_, r) => (r === row ? 1 : 0)),
        [...shape],
      );
    },
  });
  const f = Array.from(await out.data());
  tf.dispose([init, out]);
  const m = f[0]!;
  const variance = f.slice(1).reduce((acc, v) => acc + (v - m) ** 2, 0);
  return { mean: m, variance, requests: count };
}

describe.each(stochastic.map((s) => [s.name, s] as const))(
  'stochastic moments: %s',
  (_name, def) => {
    it('Monte Carlo matches the linear-Gaussian recursion, which approaches the data distribution', async () => {
      const sigmas = geometric(30, 20, 0.01);
      sigmas.push(0);
      const fine = geometric(120, 20, 0.01);
      fine.push(0);
      const gap = (m: { mean: number; variance: number }) =>
        Math.abs(m.mean - MU) + Math.abs(m.variance / (S0 * S0) - 1);
      const N = 4000;
      const monteCarlo = async (s: number[]) => {
        const out = await sample(gauss, {
          sampler: def.name,
          samplerOptions: def.conformance?.samplerOptions,
          sigmas: s,
          shape: [N, 1],
          seed: 11,
        });
        const v = Array.from(await out.data());
        out.dispose();
        const mean = v.reduce((a, b) => a + b, 0) / N;
        return { mean, variance: v.reduce((a, b) => a + (b - mean) ** 2, 0) / (N - 1) };
      };
      if (def.conformance?.affine === false) {
        // Not affine in its noise (e.g. norm-based step sizes): compare Monte Carlo with the data directly.
        expect(gap(await monteCarlo(fine))).toBeLessThan(0.1 + 10 * Math.sqrt(2 / N));
        return;
      }
      const p = await probeMoments(def, sigmas);
      expect(p.requests).toBeGreaterThan(0);
      const mc = await monteCarlo(sigmas);
      expect(Math.abs(mc.mean - p.mean)).toBeLessThan(5 * Math.sqrt(p.variance / N));
      expect(Math.abs(mc.variance / p.variance - 1)).toBeLessThan(5 * Math.sqrt(2 / N));
      // The recursion's moments approach N(MU, S0^2) as the steps are refined.
      const q = await probeMoments(def, fine);
      expect(gap(q)).toBeLessThan(0.1);
      expect(gap(q)).toBeLessThan(gap(p) + 1e-3);
    });
  },
);

describe.each(samplers.map((s) => [s.name, s] as const))('bookkeeping: %s', (_name, def) => {
  it('leaks no tensors over a whole run, an aborted run, or a broken-off iteration', async () => {
    await assertNoLeaks(async () => {
      const out = await sample(gauss, {
        sampler: def.name,
        samplerOptions: def.conformance?.samplerOptions,
        steps: 6,
        shape: [8, 1],
        seed: 1,
      });
      out.dispose();
    }, `${def.name} run`);
    await assertNoLeaks(async () => {
      const ac = new AbortController();
      await expect(
        sample(gauss, {
          sampler: def.name,
          samplerOptions: def.conformance?.samplerOptions,
          steps: 6,
          shape: [8, 1],
          seed: 1,
          signal: ac.signal,
          onStep: (info) => {
            if (info.i === 1) ac.abort();
          },
        }),
      ).rejects.toThrow(/aborted/);
    }, `${def.name} aborted`);
    await assertNoLeaks(async () => {
      for await (const info of sampleSteps(gauss, {
        sampler: def.name,
        samplerOptions: def.conformance?.samplerOptions,
        steps: 6,
        shape: [8, 1],
        seed: 1,
      })) {
        if (info.i === 1) break;
      }
    }, `${def.name} break`);
  });

  it('same seed, same output', async () => {
    const run = async (seed: number) => {
      const out = await sample(gauss, {
        sampler: def.name,
        samplerOptions: def.conformance?.samplerOptions,
        steps: 6,
        shape: [8, 1],
        seed,
      });
      return Array.from(await out.data());
    };
    const a = await run(3);
    expect(await run(3)).toEqual(a);
    expect(await run(4)).not.toEqual(a);
  });
});
