/**
 * A careless caller (issue 17): invalid sampler options and sample() options are typed errors that
 * name the field, NaN anywhere in a run's state is reported with its step and name, and the API
 * reports model calls and takes an explicit start state.
 */
import { assertNoLeaks, initBackend, readFloat32 } from '@diffuse/backend';
import { type AsyncDenoiser, type Denoiser, GaussianMixture } from '@diffuse/models';
import { DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ancestralStep,
  createScheduler,
  invert,
  NonFiniteError,
  type SampleOptions,
  SamplerError,
  type SamplerName,
  sample,
  sampleSteps,
  sampleWithInfo,
} from './index.js';

let gm: GaussianMixture;
beforeAll(async () => {
  await initBackend('wasm');
  gm = new GaussianMixture({
    weights: [0.5, 0.5],
    means: [
      [-1, 0],
      [1, 0],
    ],
    covs: [
      [
        [0.1, 0],
        [0, 0.1],
      ],
      [
        [0.1, 0],
        [0, 0.1],
      ],
    ],
  });
});

/** The error `p` rejects with (or fails the test). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    const r = await p;
    if (r instanceof tf.Tensor) r.dispose();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('eta: negative is a typed error, > 1 saturates as in k-diffusion', () => {
  it.each<SamplerName>([
    'euler_ancestral',
    'ddim',
    'ddpm',
    'dpm_2_ancestral',
    'dpmpp_2s_ancestral',
    'dpmpp_sde',
    'dpmpp_2m_sde',
    'dpm_fast',
    'dpm_adaptive',
  ])('%s rejects eta = -0.5 before allocating', async (sampler) => {
    await assertNoLeaks(async () => {
      const err = await rejection(
        sample(gm.denoiser(), {
          sampler,
          samplerOptions: { eta: -0.5 },
          sigmas: [10, 1, 0.1, 0],
          shape: [4, 2],
          seed: 1,
        }),
      );
      expect(err).toBeInstanceOf(SamplerError);
      expect(err.message).toMatch(new RegExp(`'${sampler}' option 'eta' must be >= 0, got -0.5`));
    });
  });

  it('ancestralStep: eta < 0 or NaN throws; eta > 1 caps sigma_up at sigma_next (sigma_down = 0)', () => {
    expect(() => ancestralStep(1, 0.5, -1)).toThrow(SamplerError);
    expect(() => ancestralStep(1, 0.5, Number.NaN)).toThrow(/eta must be a finite number >= 0/);
    // sigma_up(eta) = eta * sqrt(s'^2 (s^2 - s'^2) / s^2) = eta * 0.5 * sqrt(0.75)
    const { sigmaDown, sigmaUp } = ancestralStep(1, 0.5, 1.1);
    expect(sigmaUp).toBeCloseTo(1.1 * 0.5 * Math.sqrt(0.75), 14);
    expect(sigmaDown).toBeCloseTo(Math.sqrt(0.25 - sigmaUp * sigmaUp), 14);
    expect(ancestralStep(1, 0.5, 5)).toEqual({ sigmaDown: 0, sigmaUp: 0.5 });
  });

  it('DDIMScheduler.step: eta -1 or "1" is a typed error naming the step; eta 2 stays finite', () => {
    const s = createScheduler({ _class_name: 'DDIMScheduler', timestep_spacing: 'trailing' });
    s.setTimesteps(4);
    const x = tf.zeros([3, 2]);
    const out = tf.zeros([3, 2]);
    expect(() => s.step(out, 999, x, { eta: -1 })).toThrow(
      /^step 0: DDIMScheduler.step: eta must be a finite number >= 0/,
    );
    expect(() => s.step(out, 999, x, { eta: '1' as unknown as number })).toThrow(SamplerError);
    expect(() => s.step(out, 999, x, { eta: 0.5, foo: 1 } as never)).toThrow(/no option 'foo'/);
    expect(() => s.step([0, 0] as never, 999, x)).toThrow(
      /modelOutput must be a tensor, got an array/,
    );
    let y = tf.randomNormal([3, 2], 0, 1, 'float32', 1);
    const noise = tf.randomNormal([3, 2], 0, 1, 'float32', 2);
    for (const t of s.timesteps) {
      const r = s.step(out, t, y, { eta: 2, noise });
      r.predOriginalSample.dispose();
      y.dispose();
      y = r.prevSample;
    }
    expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, out, y, noise]);
  });
});

describe('sample(): every invalid option is a typed error naming it', () => {
  const base: SampleOptions = { steps: 3, shape: [2, 2], seed: 1 };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'unknown embedding',
      { embedding: 'foo' },
      /option embedding must be 'vp', 've', 'flow', got 'foo'/,
    ],
    ['a typo', { step: 3 }, /unknown option 'step'/],
    ['steps as a string', { steps: '3' }, /option steps must be a positive integer/],
    ['steps 1e12', { steps: 1e12 }, /option steps must be a positive integer \(at most/],
    ['unknown schedule', { schedule: 'cosine' }, /option schedule must be 'karras', 'exponential'/],
    ['sigmaMin > sigmaMax', { sigmaMin: 5, sigmaMax: 1 }, /sigmaMin \(5\) must be < sigmaMax/],
    ['rho NaN', { rho: Number.NaN }, /option rho must be a finite number > 0/],
    ['unknown spacing', { spacing: 'even' }, /option spacing must be 'leading', 'trailing'/],
    [
      'shape with 0',
      { shape: [0, 2] },
      /option shape must be a non-empty array of positive integers/,
    ],
    ['huge shape', { shape: [1e9, 1e9] }, /option shape must be at most/],
    ['seed 0.5', { seed: 0.5 }, /option seed must be a safe integer/],
    ['batch -1', { batch: -1 }, /option batch must be a positive integer/],
    ['samplerOptions null', { samplerOptions: null }, /option samplerOptions must be an object/],
    ['sampler 7', { sampler: 7 }, /option sampler must be a sampler name/],
    ['onStep not a function', { onStep: 1 }, /option onStep must be a function/],
    ['checkFinite "yes"', { checkFinite: 'yes' }, /option checkFinite must be a boolean/],
    ['signal {}', { signal: {} }, /option signal must be an AbortSignal/],
    ['sigmas of strings', { steps: undefined, sigmas: ['1', 0] }, /sigmas\[0\] must be a number/],
    ['noise an array', { noise: [[1, 2]] }, /option noise must be a tensor, got an array/],
    [
      'variance typo',
      { sampler: 'ddpm', samplerOptions: { variance: 'large' } },
      /must be one of 'fixed_small', 'fixed_large'/,
    ],
    [
      'order 4',
      { sampler: 'dpmpp_3m', samplerOptions: { order: 4 } },
      /option 'order' must be <= 3/,
    ],
    [
      'sNoise Infinity',
      { sampler: 'euler', samplerOptions: { sNoise: Infinity } },
      /must be finite/,
    ],
    [
      'midSigmas of strings',
      { sampler: 'pndm', samplerOptions: { midSigmas: ['a'] } },
      /array of finite numbers/,
    ],
  ];
  it.each(cases)('%s', async (_name, bad, message) => {
    await assertNoLeaks(async () => {
      const err = await rejection(sample(gm.denoiser(), { ...base, ...bad } as SampleOptions));
      expect(err).toBeInstanceOf(SamplerError);
      expect(err.message).toMatch(message);
    });
  });

  it('options that are not an object', async () => {
    for (const o of [null, 5, 'euler', [1]]) {
      const err = await rejection(sample(gm.denoiser(), o as unknown as SampleOptions));
      expect(err).toBeInstanceOf(SamplerError);
      expect(err.message).toMatch(/options must be an object/);
    }
  });

  it('a denoiser that returns a plain array (sync or async) names its output and the step', async () => {
    await assertNoLeaks(async () => {
      const bad: Denoiser = {
        prediction: 'epsilon',
        predict: (x) => x.arraySync() as unknown as tf.Tensor,
      };
      const err = await rejection(sample(bad, { steps: 3, shape: [2, 2], seed: 1 }));
      expect(err).toBeInstanceOf(SamplerError);
      expect(err.message).toMatch(
        /^step 0: the denoiser's predict returned an array \(length 2\), not a tensor/,
      );
      const badAsync: AsyncDenoiser = {
        prediction: 'epsilon',
        predictAsync: async () => 1 as unknown as tf.Tensor,
      };
      const err2 = await rejection(sample(badAsync, { steps: 3, shape: [2, 2], seed: 1 }));
      expect(err2.message).toMatch(/the denoiser's predictAsync returned 1, not a tensor/);
      const badPrediction = { ...gm.denoiser(), prediction: 'eps' } as unknown as Denoiser;
      const err3 = await rejection(sample(badPrediction, { steps: 3, shape: [2, 2], seed: 1 }));
      expect(err3.message).toMatch(/prediction must be one of x0, epsilon, v, score.*, got 'eps'/);
    });
  });

  it('a noiseSampler that returns the wrong thing is named', async () => {
    const err = await rejection(
      sample(gm.denoiser(), {
        sampler: 'euler_ancestral',
        steps: 3,
        shape: [2, 2],
        seed: 1,
        noiseSampler: () => [1, 2] as unknown as tf.Tensor,
      }),
    );
    expect(err).toBeInstanceOf(SamplerError);
    expect(err.message).toMatch(/noiseSampler\(.*\) must return a live tensor of shape \[2, 2\]/);
  });
});

describe('NaN anywhere in the state is reported with its step and name', () => {
  it('sample(): NaN step noise is blamed on the state at the next call, not on the model', async () => {
    await assertNoLeaks(async () => {
      let k = 0;
      const err = (await rejection(
        sample(gm.denoiser(), {
          sampler: 'euler_ancestral',
          steps: 6,
          shape: [4, 2],
          seed: 1,
          // the noise of step 2 holds a NaN
          noiseSampler: (_s, _n, shape) =>
            k++ === 2 ? tf.fill(shape as number[], Number.NaN) : tf.zeros(shape as number[]),
        }),
      )) as NonFiniteError;
      expect(err).toBeInstanceOf(NonFiniteError);
      expect(err.step).toBe(3);
      expect(err.message).toMatch(/^step 3: the sampler state x \(input of model call 4 .*NaN/);
    });
  });

  it('sample(): a NaN start state is named as such', async () => {
    const start = tf.tensor2d([
      [0, Number.NaN],
      [1, 1],
    ]);
    const err = await rejection(sample(gm.denoiser(), { steps: 3, start }));
    start.dispose();
    expect(err).toBeInstanceOf(NonFiniteError);
    expect(err.message).toMatch(/^step 0: the start state/);
  });

  it('scheduler: a NaN sample at step 2 is reported at step 2 (not blamed on the model at step 3)', () => {
    const s = createScheduler({ _class_name: 'EulerDiscreteScheduler' });
    s.setTimesteps(5);
    const out = tf.zeros([2, 2]);
    let x = tf.ones([2, 2]);
    const ts = s.timesteps;
    for (let k = 0; k < 2; k++) {
      const r = s.step(out, ts[k]!, x);
      tf.dispose([x, r.predOriginalSample]);
      x = r.prevSample;
    }
    const bad = tf.fill([2, 2], Number.NaN);
    expect(() => s.step(out, ts[2]!, bad)).toThrow(
      /^step 2: EulerDiscreteScheduler: the sample passed to step at timestep .* \(the state after step 1\) contains NaN/,
    );
    tf.dispose([x, out, bad]);
    s.dispose();
  });

  it('scheduler: a NaN sample or an overflowing result at the last step does not come back silently', () => {
    for (const [what, sample, output, message] of [
      ['nan sample', Number.NaN, 0, /the sample passed to step/],
      // finite inputs whose x0 = (x_t - sigma_t eps) / alpha_t overflows
      ['overflow', 3e38, -3e38, /prevSample, the final state after timestep/],
    ] as const) {
      const s = createScheduler({
        _class_name: 'DDIMScheduler',
        clip_sample: false,
        timestep_spacing: 'trailing',
      });
      s.setTimesteps(2);
      const x = tf.ones([2, 2]);
      const zero = tf.zeros([2, 2]);
      const r = s.step(zero, s.timesteps[0]!, x);
      const last = tf.fill([2, 2], sample);
      const out = tf.fill([2, 2], output);
      expect(() => s.step(out, s.timesteps[1]!, last), what).toThrow(message);
      tf.dispose([x, zero, last, out, r.prevSample, r.predOriginalSample]);
      s.dispose();
    }
  });

  it('clip_sample keeps NaN visible (wasm clipByValue(NaN) is -1)', () => {
    const s = createScheduler({ _class_name: 'DDIMScheduler' }, { checkFinite: false });
    s.setTimesteps(1);
    const x = tf.fill([1, 2], Number.NaN);
    const out = tf.zeros([1, 2]);
    const r = s.step(out, s.timesteps[0]!, x);
    expect(Array.from(r.predOriginalSample.dataSync()).every(Number.isNaN)).toBe(true);
    tf.dispose([x, out, r.prevSample, r.predOriginalSample]);
  });
});

describe('model calls and the start state', () => {
  /** Counts model calls. */
  function counting(inner: Denoiser): Denoiser & { calls: number } {
    const d = {
      calls: 0,
      prediction: inner.prediction,
      predict: (x: tf.Tensor, level: never, cond?: never) => {
        d.calls++;
        return inner.predict(x, level, cond);
      },
    };
    return d;
  }

  it.each<[SamplerName, number, number]>([
    ['euler', 10, 10],
    ['heun', 10, 19],
    ['dpm_2', 10, 19],
    ['plms', 10, 11],
    ['pndm', 10, 19],
    ['dpm_adaptive', 10, -1],
  ])('%s with %i steps reports its NFE (%i)', async (sampler, steps, expected) => {
    const d = counting(gm.denoiser());
    const r = await sampleWithInfo(d, { sampler, steps, shape: [4, 2], seed: 1 });
    r.sample.dispose();
    expect(r.nfe).toBe(d.calls);
    if (expected > 0) expect(r.nfe).toBe(expected);
    expect(r.sigmas.length).toBe(steps + 1);
  });

  it('StepInfo carries the calls so far', async () => {
    const nfes: number[] = [];
    const it = sampleSteps(gm.denoiser(), { sampler: 'heun', steps: 3, shape: [2, 2], seed: 1 });
    for (let r = await it.next(); ; r = await it.next()) {
      if (r.done) {
        r.value.dispose();
        break;
      }
      nfes.push(r.value.nfe);
    }
    expect(nfes).toEqual([1, 3, 5]);
  });

  it('start = alpha_0 sigma_0 noise gives the run that noise gives (VP embedding)', async () => {
    const noise = tf.randomNormal([8, 2], 0, 1, 'float32', 5);
    const s0 = 80;
    const a0 = 1 / Math.sqrt(1 + s0 * s0);
    const start = tf.mul(noise, a0 * s0);
    const a = await sample(gm.denoiser(), { sampler: 'dpmpp_2m', steps: 8, noise });
    const b = await sample(gm.denoiser(), { sampler: 'dpmpp_2m', steps: 8, start });
    const va = await readFloat32(a);
    const vb = await readFloat32(b);
    for (let k = 0; k < va.length; k++) expect(vb[k]).toBeCloseTo(va[k]!, 5);
    tf.dispose([noise, start, a, b]);
    const both = await rejection(sample(gm.denoiser(), { steps: 2, noise: a, start: a }));
    expect(both.message).toMatch(/not both|disposed/);
  });

  it('invert -> start: a deterministic round trip through the latent', async () => {
    const schedule = DiscreteSchedule.fromConfig();
    const x0 = tf.tensor2d([
      [-1, 0.1],
      [1, -0.2],
    ]);
    const latent = await invert(gm.denoiser(), x0, { schedule, steps: 50, spacing: 'leading' });
    const back = await sample(gm.denoiser(), {
      schedule,
      steps: 50,
      spacing: 'leading',
      start: latent,
    });
    const v = await readFloat32(back);
    const ref = await readFloat32(x0);
    for (let k = 0; k < v.length; k++) expect(Math.abs(v[k]! - ref[k]!)).toBeLessThan(0.05);
    tf.dispose([x0, latent, back]);
  });
});

describe('FlowMatchEulerDiscreteScheduler shares the step checks', () => {
  it('a NaN sample at step 1 is named; a plain-array output is typed', () => {
    const s = createScheduler({ _class_name: 'FlowMatchEulerDiscreteScheduler' });
    s.setTimesteps(4);
    const out = tf.zeros([2, 2]);
    const x = tf.ones([2, 2]);
    const r = s.step(out, s.timesteps[0]!, x);
    const bad = tf.fill([2, 2], Number.NaN);
    expect(() => s.step(out, s.timesteps[1]!, bad)).toThrow(
      /^step 1: FlowMatchEulerDiscreteScheduler: the sample passed to step .* contains NaN/,
    );
    expect(() => s.step([[0, 0]] as never, s.timesteps[1]!, x)).toThrow(
      /modelOutput must be a tensor, got an array/,
    );
    tf.dispose([out, x, bad, r.prevSample, r.predOriginalSample]);
  });
});
