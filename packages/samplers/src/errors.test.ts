/** Bad input gives a typed error that says what was wrong and, where there is one, names the step. */
import { assertNoLeaks, DiffuseError, initBackend } from '@diffuse/backend';
import { type Denoiser, GaussianMixture } from '@diffuse/models';
import { DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createScheduler,
  NonFiniteError,
  SamplerError,
  SCHEDULER_CLASSES,
  SchedulerConfigError,
  sample,
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

/** A denoiser that returns NaN from model call `bad` on. */
function nanAfter(bad: number): Denoiser {
  let calls = 0;
  const inner = gm.denoiser('epsilon');
  return {
    prediction: 'epsilon',
    predict: (x, level) => {
      const y = inner.predict(x, level);
      if (calls++ < bad) return y;
      const z = tf.mul(y, Number.NaN);
      y.dispose();
      return z;
    },
  };
}

describe('sample(): bad input', () => {
  it('zero steps, more steps than training steps, unknown sampler or option', async () => {
    const d = gm.denoiser();
    await expect(sample(d, { steps: 0, shape: [2, 2], seed: 1 })).rejects.toThrow(SamplerError);
    await expect(sample(d, { steps: 0, shape: [2, 2], seed: 1 })).rejects.toThrow(
      /steps must be a positive integer/,
    );
    const schedule = DiscreteSchedule.fromConfig();
    await expect(sample(d, { schedule, steps: 1001, shape: [2, 2], seed: 1 })).rejects.toThrow(
      /exceeds the schedule's 1000/,
    );
    // @ts-expect-error: an unknown sampler name fails to compile, and throws at run time
    await expect(sample(d, { sampler: 'nope', steps: 5, shape: [2, 2], seed: 1 })).rejects.toThrow(
      /unknown sampler 'nope'/,
    );
    await expect(
      sample(d, { sampler: 'euler', samplerOptions: { eta: 1 }, steps: 5, shape: [2, 2], seed: 1 }),
    ).rejects.toThrow(/has no option 'eta'/);
    await expect(sample(d, { sigmas: [1, 2, 0], shape: [2, 2], seed: 1 })).rejects.toThrow(
      /decrease strictly/,
    );
    await expect(sample(d, { sigmas: [Number.NaN, 0], shape: [2, 2], seed: 1 })).rejects.toThrow(
      /finite/,
    );
  });

  it('a stochastic sampler without a seed says so', async () => {
    await expect(
      sample(gm.denoiser(), { sampler: 'euler_ancestral', steps: 3, noise: tf.zeros([2, 2]) }),
    ).rejects.toThrow(/needs noise/);
  });

  it('NaN in a model output names the step, and leaks nothing', async () => {
    await assertNoLeaks(async () => {
      const err = await sample(nanAfter(3), {
        sampler: 'euler',
        steps: 8,
        shape: [4, 2],
        seed: 1,
      }).catch((e) => e);
      expect(err).toBeInstanceOf(NonFiniteError);
      expect(err.step).toBe(3);
      expect(err.message).toMatch(/^step 3: .*NaN/);
      const err2 = await sample(nanAfter(3), {
        sampler: 'heun',
        steps: 8,
        shape: [4, 2],
        seed: 1,
      }).catch((e) => e);
      expect(err2.step).toBe(1); // Heun: calls 0,1 are step 0, calls 2,3 step 1
    });
  });

  it('a denoiser returning the wrong shape names the step', async () => {
    const bad: Denoiser = { prediction: 'x0', predict: (x) => tf.zeros([x.shape[0]!, 3]) };
    const err = await sample(bad, { steps: 4, shape: [4, 2], seed: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(SamplerError);
    expect(err.message).toMatch(/step 0: the denoiser returned shape \[4, 3\] for input \[4, 2\]/);
  });
});

describe('createScheduler(): bad input', () => {
  it('unknown _class_name or option, or an unsupported value', () => {
    expect(() => createScheduler({ _class_name: 'FooScheduler' })).toThrow(SchedulerConfigError);
    expect(() => createScheduler({ _class_name: 'FooScheduler' })).toThrow(
      /unknown _class_name 'FooScheduler'/,
    );
    expect(() => createScheduler({})).toThrow(/no _class_name/);
    // a key the class does not take: ignored with diffusers' warning, or an error in strict mode
    const warned: string[] = [];
    createScheduler(
      { _class_name: 'DDIMScheduler', beta_shedule: 'linear' },
      { onWarning: (w) => warned.push(w) },
    ).dispose();
    expect(warned).toEqual([expect.stringMatching(/\{'beta_shedule': 'linear'\} were passed/)]);
    expect(() =>
      createScheduler({ _class_name: 'DDIMScheduler', beta_shedule: 'linear' }, { strict: true }),
    ).toThrow(/DDIMScheduler does not take 'beta_shedule'/);
    expect(() => createScheduler({ _class_name: 'UniPCMultistepScheduler', solver_p: {} })).toThrow(
      /solver_p/,
    );
    expect(() =>
      createScheduler({ _class_name: 'UniPCMultistepScheduler', predict_x0: false }),
    ).toThrow(/ends in NaN in diffusers/);
    expect(() =>
      createScheduler({
        _class_name: 'DDIMScheduler',
        thresholding: true,
        dynamic_thresholding_ratio: 2,
      }),
    ).toThrow(/dynamic_thresholding_ratio/);
    expect(() =>
      createScheduler({ _class_name: 'DDIMScheduler', prediction_type: 'flow' }),
    ).toThrow(SchedulerConfigError);
    expect(() =>
      createScheduler({
        _class_name: 'DPMSolverMultistepScheduler',
        algorithm_type: 'dpmsolver+++',
      }),
    ).toThrow(/algorithm_type/);
  });

  it('zero steps, more steps than training steps', () => {
    const s = createScheduler({ _class_name: 'EulerDiscreteScheduler' });
    expect(() => s.setTimesteps(0)).toThrow(SamplerError);
    expect(() => s.setTimesteps(1001)).toThrow(/more steps than the 1000 training timesteps/);
    expect(() => s.step(tf.zeros([1]), 999, tf.zeros([1]))).toThrow(/call setTimesteps/);
  });

  it('mismatched shapes, wrong timesteps, NaN outputs and extra steps name the step', () => {
    const s = createScheduler({ _class_name: 'DDIMScheduler', timestep_spacing: 'trailing' });
    s.setTimesteps(4);
    const x = tf.zeros([3, 2]);
    expect(() => s.step(tf.zeros([3, 3]), s.timesteps[0]!, x)).toThrow(
      /^step 0: model output shape \[3,3\] differs/,
    );
    expect(() => s.step(tf.zeros([3, 2]), 5, x)).toThrow(/^step 0: .*expected timestep 999, got 5/);
    expect(() => s.step(tf.fill([3, 2], Number.NaN), 999, x)).toThrow(NonFiniteError);
    let y = x;
    for (const t of s.timesteps) {
      const r = s.step(tf.zeros([3, 2]), t, y);
      r.predOriginalSample.dispose();
      if (y !== x) y.dispose();
      y = r.prevSample;
    }
    expect(() => s.step(tf.zeros([3, 2]), 249, y)).toThrow(/^step 4: .*step called 5 times/);
    tf.dispose([x, y]);
  });

  it('every class runs a whole loop without leaking', async () => {
    for (const name of SCHEDULER_CLASSES) {
      await assertNoLeaks(async () => {
        const s = createScheduler({ _class_name: name });
        s.setTimesteps(6);
        const denoiser = gm.denoiser('epsilon');
        const schedule = DiscreteSchedule.fromConfig();
        let x = tf.fill([4, 2], s.initNoiseSigma);
        const noise = tf.zeros([4, 2]);
        for (const t of s.timesteps) {
          const xin = s.scaleModelInput(x, t);
          const level = name.startsWith('EDM')
            ? { alpha: 1, sigma: Math.exp(4 * t) }
            : name === 'CosineDPMSolverMultistepScheduler'
              ? { alpha: 1, sigma: Math.tan((t * Math.PI) / 2) }
              : name.startsWith('FlowMatch')
                ? { alpha: 1 - t / 1000, sigma: t / 1000 }
                : name === 'MiniMaxH3Scheduler'
                  ? { alpha: t, sigma: 1 - t }
                  : name === 'DDPMWuerstchenScheduler'
                    ? schedule.levelAt(t * 999)
                    : schedule.levelAt(t);
          const out = denoiser.predict(xin, level);
          const r = s.step(out, t, x, { noise });
          tf.dispose([xin, out, x, r.predOriginalSample]);
          x = r.prevSample;
        }
        expect(Number.isFinite((await x.data())[0])).toBe(true);
        tf.dispose([x, noise]);
      }, name);
    }
  });

  it('all errors are DiffuseErrors with a code', () => {
    try {
      createScheduler({ _class_name: 'X' });
    } catch (e) {
      expect(e).toBeInstanceOf(DiffuseError);
      expect((e as DiffuseError).code).toBe('SCHEDULER_CONFIG');
    }
  });
});
