/**
 * Seeded fuzz of the sampling entry points (issue 17's fuzz suite): malformed option objects through
 * `sample()`, `resolveSamplerOptions` and a scheduler's `step`, and malformed denoisers. Every case
 * must end in a typed `DiffuseError` (or, when the mutation happens to be valid, a finite sample),
 * within 1 s, leaving no tensor behind. The seed is fixed, so a failure reproduces; the failing case
 * is printed in the assertion message.
 */
import { DiffuseError, initBackend } from '@diffuse/backend';
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

/** mulberry32: a tiny seeded uniform generator. */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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

/** The outcome of one case: 'typed' (a DiffuseError), 'ok' (valid by chance), or the stray error. */
async function outcome(run: () => Promise<unknown> | unknown): Promise<'typed' | 'ok' | Error> {
  try {
    const r = await run();
    if (r instanceof tf.Tensor) {
      const finite = (await r.data()).every(Number.isFinite);
      r.dispose();
      if (!finite) return new Error('a NaN result came back silently');
    }
    return 'ok';
  } catch (e) {
    return e instanceof DiffuseError ? 'typed' : (e as Error);
  }
}

describe(`fuzz (seed ${SEED})`, () => {
  it(`${CASES} malformed sample() calls: typed errors, < 1 s each, no leaks`, async () => {
    const rand = uniform(SEED);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
    const samplers = listSamplers();
    const counts = { typed: 0, ok: 0 };
    let slowest = 0;
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
      const t0 = performance.now();
      const r = await outcome(() => sample(denoiser as Denoiser, options as SampleOptions));
      const dt = performance.now() - t0;
      slowest = Math.max(slowest, dt);
      const what = `case ${c}: ${def.name} ${described.join(', ')}`;
      expect(r instanceof Error ? `${what}: ${r.name}: ${r.message}` : r, what).not.toMatch(
        /^case/,
      );
      expect(dt, what).toBeLessThan(1000);
      expect(tf.memory().numTensors, what).toBe(before);
      counts[r as 'typed' | 'ok']++;
    }
    // Most mutations are invalid: the typed-error path is what is exercised.
    expect(counts.typed).toBeGreaterThan(CASES * 0.6);
    expect(counts.typed + counts.ok).toBe(CASES);
    console.log(`fuzz sample(): ${JSON.stringify(counts)}, slowest ${slowest.toFixed(0)} ms`);
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
    const rand = uniform(SEED + 1);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
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
