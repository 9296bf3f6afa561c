/**
 * Seeded fuzz of the sampling entry points (issue 17's fuzz suite): malformed option objects through
 * `sample()`, `resolveSamplerOptions` and a scheduler's `step`, and malformed denoisers. Every case
 * must end in a typed `DiffuseError` (or, when the mutation happens to be valid, a finite sample),
 * within 1 s of CPU, leaving no tensor behind (the shared `Fuzzer` of @diffuse/backend). The seed is fixed, so a failure reproduces; the failing case
 * is printed in the assertion message.
 */
import { DiffuseError, Fuzzer, initBackend, Random } from '@diffuse/backend';
import { type Denoiser, GaussianMixture } from '@diffuse/models';
import { DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createScheduler,
  listSamplers,
  resolveSamplerOptions,
  type SampleOptions,
  SCHEDULER_CLASSES,
  sample,
} from './index.js';
import { SAMPLE_OPTION_KEYS } from './sample.js';

const SEED = 20261208;
const CASES = 600;

/** Values a careless caller or a hostile JSON might put anywhere. */
const HOSTILE: unknown[] = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -1,
  0,
  -0.5,
  2.5,
  1e12,
  -1e300,
  '3',
  '',
  'foo',
  'vp',
  null,
  true,
  false,
  [],
  [1, 'a'],
  [Number.NaN],
  {},
  { alpha: 1 },
  () => 1,
  10n,
  Symbol('s'),
];

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

/** Malformed denoisers: wrong outputs, wrong prediction names, not a denoiser at all. */
function hostileDenoiser(pick: <T>(a: readonly T[]) => T): unknown {
  const good = gm.denoiser('epsilon');
  return pick<unknown>([
    good,
    good,
    null,
    {},
    { prediction: 'epsilon' },
    { prediction: 'noise', predict: good.predict },
    { prediction: 'epsilon', predict: (x: tf.Tensor) => x.arraySync() },
    { prediction: 'epsilon', predict: () => null },
    { prediction: 'epsilon', predict: () => tf.zeros([1]) },
    { prediction: 'epsilon', predict: (x: tf.Tensor) => tf.fill(x.shape, Number.NaN) },
    { prediction: 'epsilon', predictAsync: async () => 'tensor' },
    {
      prediction: 'x0',
      predict: () => {
        const t = tf.zeros([2, 2]);
        t.dispose();
        return t;
      },
    },
  ]);
}

describe(`fuzz (seed ${SEED})`, () => {
  it(`${CASES} malformed sample() calls: typed errors, < 1 s of CPU each, no leaks`, async () => {
    // the project's seeded harness (Random.seed; typed error, CPU time and leak check per call)
    const fuzz = new Fuzzer(SEED);
    const rand = () => fuzz.uniform();
    const pick = <T>(a: readonly T[]): T => fuzz.pick(a);
    const samplers = listSamplers();
    const before = tf.memory().numTensors;
    for (let c = 0; c < CASES; c++) {
      const def = pick(samplers);
      const options: Record<string, unknown> = {
        sampler: def.name,
        steps: 3,
        shape: [2, 2],
        seed: 1,
        samplerOptions: { ...def.conformance?.samplerOptions },
      };
      const mutations = 1 + Math.floor(rand() * 3);
      const described: string[] = [];
      let denoiser: unknown = gm.denoiser('epsilon');
      for (let m = 0; m < mutations; m++) {
        const kind = rand();
        const value = pick(HOSTILE);
        if (kind < 0.4) {
          const key = pick(SAMPLE_OPTION_KEYS);
          options[key] = value;
          described.push(`${key}=${String(value)}`);
        } else if (kind < 0.7) {
          const so = options.samplerOptions;
          if (typeof so !== 'object' || so === null || Array.isArray(so))
            options.samplerOptions = {};
          const keys = Object.keys(def.defaults);
          const key = rand() < 0.85 && keys.length > 0 ? pick(keys) : `bogus${c}`;
          (options.samplerOptions as Record<string, unknown>)[key] = value;
          described.push(`samplerOptions.${key}=${String(value)}`);
        } else if (kind < 0.8) {
          options[pick(['stpes', 'guidance_scale', 'eta', 'sigma_min', 'noise_sampler'])] = value;
          described.push('misspelled key');
        } else if (kind < 0.9) {
          denoiser = hostileDenoiser(pick);
          described.push('hostile denoiser');
        } else {
          options.schedule = pick([DiscreteSchedule.fromConfig(), 'karras', 'cosine', value]);
          described.push('schedule');
        }
      }
      await fuzz.probe(
        `case ${c}`,
        () => `${def.name} ${described.join(', ')}`,
        () => sample(denoiser as Denoiser, options as SampleOptions),
        {
          check: (outcome, r) =>
            outcome === 'ok' && !(r as tf.Tensor).dataSync().every(Number.isFinite)
              ? 'a NaN result came back silently'
              : undefined,
        },
      );
    }
    expect(fuzz.failures, fuzz.report()).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
    // Most mutations are invalid: the typed-error path is what is exercised.
    expect(fuzz.counts.rejected).toBeGreaterThan(CASES * 0.6);
    expect(fuzz.counts.rejected + fuzz.counts.ok).toBe(CASES);
    console.log(`fuzz sample(): ${fuzz.summary()}`);
  }, 60_000);

  it('resolveSamplerOptions: every sampler x every option x every hostile value is typed', () => {
    let n = 0;
    for (const def of listSamplers()) {
      for (const key of [...Object.keys(def.defaults), 'bogus']) {
        for (const value of HOSTILE) {
          n++;
          try {
            resolveSamplerOptions(def, { [key]: value } as never);
          } catch (e) {
            expect(e, `${def.name}.${key}=${String(value)}`).toBeInstanceOf(DiffuseError);
          }
        }
      }
    }
    expect(n).toBeGreaterThan(500);
  });

  it("every scheduler's step with hostile arguments is typed and leaks nothing", () => {
    const rng = Random.seed(SEED + 1);
    const rand = () => rng.uniform01();
    const pick = <T>(a: readonly T[]): T => a[rng.int(a.length)]!;
    const before = tf.memory().numTensors;
    let n = 0;
    for (const name of SCHEDULER_CLASSES) {
      for (let c = 0; c < 12; c++) {
        const s = createScheduler({ _class_name: name });
        s.setTimesteps(6);
        const x = tf.ones([2, 2]);
        const out = tf.zeros([2, 2]);
        const args: unknown[] = [out, s.timesteps[0], x, {}];
        const slot = Math.floor(rand() * 4);
        let value = pick<unknown>([
          ...HOSTILE,
          { eta: pick(HOSTILE) },
          { noise: pick(HOSTILE) },
          { order: pick(HOSTILE) },
          'NaN tensor',
        ]);
        if (value === 'NaN tensor') value = tf.fill([2, 2], Number.NaN);
        args[slot] = value;
        try {
          const r = (
            s.step as (...a: unknown[]) => { prevSample: tf.Tensor; predOriginalSample: tf.Tensor }
          )(...args);
          tf.dispose([r.prevSample, r.predOriginalSample]);
        } catch (e) {
          expect(e, `${name} arg ${slot} = ${String(value)}`).toBeInstanceOf(DiffuseError);
        }
        n++;
        if (value instanceof tf.Tensor) value.dispose();
        s.dispose();
        tf.dispose([x, out]);
      }
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(n).toBe(12 * SCHEDULER_CLASSES.length);
  });
});
