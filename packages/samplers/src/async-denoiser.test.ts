/**
 * The async driver with an `AsyncDenoiser` (a model whose prediction arrives as a promise, as ONNX
 * Runtime Web's): the same tensor ops run in the same order, so every sampler must give results
 * bit-identical to the synchronous `Denoiser` it wraps, with no leaked tensors.
 */
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { type AsyncDenoiser, type Denoiser, GaussianMixture } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  invert,
  logLikelihood,
  SamplerError,
  type SamplerName,
  sample,
  sampleSteps,
} from './index.js';

let den: Denoiser;
beforeAll(async () => {
  await initBackend('wasm');
  den = new GaussianMixture({
    weights: [0.3, 0.7],
    means: [
      [-1, 0.5],
      [1.2, -0.4],
    ],
    covs: [
      [
        [0.05, 0.01],
        [0.01, 0.08],
      ],
      [
        [0.1, 0],
        [0, 0.03],
      ],
    ],
  }).denoiser('epsilon');
});

/** `d` behind a promise that resolves on a later macrotask, counting calls. */
function deferred(d: Denoiser): AsyncDenoiser & { calls: number } {
  const wrapped = {
    prediction: d.prediction,
    shape: d.shape,
    calls: 0,
    async predictAsync(x: tf.Tensor, level: Parameters<Denoiser['predict']>[1]) {
      wrapped.calls++;
      await new Promise((r) => setTimeout(r, 0));
      return d.predict(x, level);
    },
  };
  return wrapped;
}

const CASES: [SamplerName, Record<string, unknown>][] = [
  ['euler', {}],
  ['heun', {}],
  ['dpmpp_2m', {}],
  ['euler_ancestral', { seed: 11 }],
  ['dpmpp_2m_sde', { seed: 5 }],
  ['dpm_adaptive', {}],
];

describe('sample with an AsyncDenoiser', () => {
  for (const [sampler, extra] of CASES) {
    it(`${sampler}: bit-identical to the synchronous denoiser, no leaks`, async () => {
      const opts = { sampler, steps: 8, shape: [64, 2], seed: 3, ...extra };
      const sync = await sample(den, opts);
      const slow = deferred(den);
      const asyncOut = await assertNoLeaks(() => sample(slow, opts), `${sampler} async`);
      expect(slow.calls).toBeGreaterThan(0);
      const a = await sync.data();
      const b = await asyncOut.data();
      expect(b.length).toBe(a.length);
      expect(Array.from(b)).toEqual(Array.from(a));
      // Not trivially equal: the samples moved away from the initial noise scale.
      expect(Math.max(...Array.from(a, Math.abs))).toBeLessThan(5);
      tf.dispose([sync, asyncOut]);
    });
  }

  it('sampleSteps reports the same steps; invert gives the same latent', async () => {
    const opts = { sampler: 'dpmpp_2m' as const, steps: 6, shape: [16, 2], seed: 1 };
    const collect = async (d: Denoiser | AsyncDenoiser) => {
      const seen: number[][] = [];
      const it = sampleSteps(d, opts);
      for (let r = await it.next(); ; r = await it.next()) {
        if (r.done) {
          r.value.dispose();
          return seen;
        }
        seen.push([r.value.i, r.value.sigma, ...(await r.value.denoised.data()).slice(0, 4)]);
      }
    };
    expect(await collect(deferred(den))).toEqual(await collect(den));

    const x = tf.tensor2d([
      [0.3, -0.2],
      [-1, 0.5],
    ]);
    const sigmas = [0.02, 0.1, 0.5, 2, 10];
    const z1 = await invert(den, x, { sigmas });
    const z2 = await assertNoLeaks(() => invert(deferred(den), x, { sigmas }), 'invert async');
    expect(Array.from(await z2.data())).toEqual(Array.from(await z1.data()));
    tf.dispose([x, z1, z2]);
  });

  it('prefers predictAsync when a model offers both', async () => {
    let syncCalls = 0;
    const both: Denoiser & AsyncDenoiser = {
      prediction: den.prediction,
      shape: den.shape,
      predict: (x, l) => {
        syncCalls++;
        return den.predict(x, l);
      },
      predictAsync: async (x, l) => den.predict(x, l),
    };
    const out = await sample(both, { steps: 3, shape: [4, 2], seed: 0 });
    out.dispose();
    expect(syncCalls).toBe(0);
  });
});

describe('AsyncDenoiser errors are typed', () => {
  it('a rejected model call propagates, and nothing leaks', async () => {
    const failing: AsyncDenoiser = {
      prediction: 'epsilon',
      shape: [2],
      predictAsync: async () => {
        throw new Error('runtime lost');
      },
    };
    await assertNoLeaks(async () => {
      await expect(sample(failing, { steps: 3, shape: [4, 2], seed: 0 })).rejects.toThrow(
        'runtime lost',
      );
    }, 'rejected call');
  });

  it('a wrong shape or a non-tensor is a SamplerError naming the step', async () => {
    const wrong: AsyncDenoiser = {
      prediction: 'epsilon',
      predictAsync: async (x) => tf.zeros([x.shape[0]!, 3]),
    };
    await assertNoLeaks(async () => {
      await expect(sample(wrong, { steps: 3, shape: [4, 2], seed: 0 })).rejects.toThrow(
        /step 0: the denoiser returned shape \[4, 3\] for input \[4, 2\]/,
      );
    }, 'wrong shape');
    const notTensor = {
      prediction: 'epsilon',
      predictAsync: async () => [1, 2],
    } as unknown as AsyncDenoiser;
    await expect(sample(notTensor, { steps: 3, shape: [4, 2], seed: 0 })).rejects.toThrow(
      SamplerError,
    );
  });

  it('a synchronous API (logLikelihood) rejects an AsyncDenoiser with a SamplerError', async () => {
    const x = tf.zeros([2, 2]);
    const err = await logLikelihood(deferred(den) as unknown as Denoiser, x, {}).catch((e) => e);
    expect(err).toBeInstanceOf(SamplerError);
    expect(String(err.message)).toMatch(/asynchronous/);
    x.dispose();
  });

  it('an object without predict or predictAsync is a SamplerError', async () => {
    await expect(
      sample({ prediction: 'epsilon' } as unknown as Denoiser, { steps: 2, shape: [1, 2] }),
    ).rejects.toThrow(/predict\(x, level, cond\) or predictAsync/);
  });
});
