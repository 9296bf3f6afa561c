/**
 * Seeded fuzzing of untrusted scheduler configs (issues 16 and 17): 600 malformed configs, mutated from
 * the real files of `reference-data/real-configs/`, through `createScheduler` (then `setTimesteps` and
 * two `step`s when it loads) and `fromDiffusersConfig`. Each must either load or throw a typed
 * `DiffuseError`, use at most 1 s of CPU, and leave no tensor behind (the shared `Fuzzer`); and `createScheduler` must reject every
 * value `fromDiffusersConfig` rejects (one shared validation).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DiffuseError, Fuzzer, initBackend, liveTensors } from '@diffuse/backend';
import {
  DIFFUSERS_FIELD_RULES,
  fromDiffusersConfig,
  parseDiffusersJson,
  ScheduleError,
  validateDiffusersFields,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createScheduler, SCHEDULER_CLASSES, SchedulerConfigError } from './index.js';
import { repoRoot } from './testing/refs.js';

const files = (
  JSON.parse(
    readFileSync(resolve(repoRoot, 'reference-data/real-configs/configs.json'), 'utf8'),
  ) as { configs: { raw: string }[] }
).configs.map((c) => parseDiffusersJson(c.raw) as Record<string, unknown>);

const HOSTILE: unknown[] = [
  null,
  undefined,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -1,
  0,
  0.5,
  1,
  2,
  3.7,
  1e12,
  1e308,
  -1e-300,
  2 ** 31,
  'yes',
  '0.001',
  '1000',
  '',
  'linear',
  'trailing',
  'v_prediction',
  'flow_prediction',
  [],
  [0.5],
  [1, 2, 3],
  {},
  { a: 1 },
  true,
  false,
  '-Infinity',
];

function mutate(r: () => number): unknown {
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const kind = r();
  if (kind < 0.03) return pick([null, 42, 'DDIMScheduler', [], true, undefined]);
  const c: Record<string, unknown> = { ...pick(files) };
  const edits = 1 + Math.floor(r() * 3);
  for (let e = 0; e < edits; e++) {
    const u = r();
    if (u < 0.55) c[pick(Object.keys(DIFFUSERS_FIELD_RULES))] = pick(HOSTILE);
    else if (u < 0.7)
      c._class_name = pick([...SCHEDULER_CLASSES, 'FlaxDDIMScheduler', 'X', 7, null]);
    else if (u < 0.8) delete c[pick(Object.keys(c))];
    else if (u < 0.88) c[`junk_${Math.floor(r() * 5)}`] = pick(HOSTILE);
    else if (u < 0.94) c._use_default_values = pick([['beta_start'], 'x', [1], null]);
    else {
      // contradictions between two fields
      c.num_train_timesteps = pick([2, 10, 1000]);
      c.trained_betas = pick([null, [0.1, 0.2], Array.from({ length: 10 }, () => 0.01)]);
      c.steps_offset = pick([0, 1, 9, 999]);
    }
  }
  return c;
}

const typed = (e: unknown) => e instanceof DiffuseError;

/** Whether the shared validation rejects the config (after diffusers drops `_use_default_values`). */
function sharedRejects(config: unknown): boolean {
  let c = config;
  if (c !== null && typeof c === 'object' && !Array.isArray(c)) {
    const used = (c as Record<string, unknown>)._use_default_values;
    if (Array.isArray(used))
      c = Object.fromEntries(Object.entries(c).filter(([k]) => !used.includes(k)));
  }
  try {
    validateDiffusersFields(c);
    return false;
  } catch {
    return true;
  }
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('fuzzing scheduler configs', () => {
  it('600 malformed configs: a scheduler or a typed error, < 1 s of CPU each, no leaks, one validation', async () => {
    // the project's seeded harness: the configs come from Random.seed, each call is checked for a
    // typed error, CPU time and leaked tensors
    const fuzz = new Fuzzer(20240616);
    const r = () => fuzz.uniform();
    const before = liveTensors();
    let loaded = 0;
    let rejected = 0;
    for (let i = 0; i < 600; i++) {
      const config = mutate(r);
      const input = () => `case ${i}: ${JSON.stringify(config) ?? String(config)}`;
      await fuzz.probe('fromDiffusersConfig', input, () =>
        fromDiffusersConfig(config, { onWarning: () => {} }),
      );
      const outcome = await fuzz.probe('createScheduler, setTimesteps, step', input, () => {
        const s = createScheduler(config as Record<string, unknown>, { onWarning: () => {} });
        loaded++;
        try {
          // a value the shared validation rejects is rejected by both entry points (untyped: a failure)
          if (sharedRejects(config))
            throw new Error('createScheduler accepted a config validateDiffusersFields rejects');
          try {
            s.setTimesteps([1, 2, 4, 7, 20][i % 5]!, { mu: 1.15 });
          } catch (e) {
            if (!typed(e)) throw e;
            s.setTimesteps(4);
          }
          let x = tf.ones([2, 2]);
          try {
            for (const t of s.timesteps.slice(0, 2)) {
              const out = tf.zerosLike(x);
              try {
                const step = s.step(out, t, x);
                step.predOriginalSample.dispose();
                x.dispose();
                x = step.prevSample;
              } finally {
                out.dispose();
              }
            }
          } finally {
            x.dispose();
          }
        } finally {
          s.dispose();
        }
      });
      if (outcome === 'rejected') rejected++;
    }
    expect(fuzz.failures, fuzz.report()).toEqual([]);
    expect(liveTensors()).toBe(before);
    expect(loaded).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
    console.log(`scheduler config fuzz: ${fuzz.summary()}`);
  });

  it('the careless-caller cases of issue 17 give typed errors naming the field', () => {
    const sd = { ...files[0]!, _class_name: 'DDIMScheduler' };
    const cases: [unknown, RegExp][] = [
      [null, /must be an object .*got null/],
      [
        { ...sd, beta_start: 0.02, beta_end: 0.001 },
        /beta_start \(0.02\) is above beta_end \(0.001\)/,
      ],
      [
        { ...sd, beta_start: '0.00085' },
        /beta_start must be a finite number in \(0, 1\), got '0.00085'/,
      ],
      [{ ...sd, clip_sample: 'yes' }, /clip_sample must be a boolean, got 'yes'/],
      [{ ...sd, clip_sample_range: -1 }, /clip_sample_range must be a finite number > 0, got -1/],
      [
        { ...sd, num_train_timesteps: 1e12 },
        /num_train_timesteps must be an integer in \[2, 1000000\]/,
      ],
    ];
    for (const [config, message] of cases) {
      expect(() => createScheduler(config as Record<string, unknown>)).toThrow(
        SchedulerConfigError,
      );
      expect(() => createScheduler(config as Record<string, unknown>)).toThrow(message);
      expect(() => fromDiffusersConfig(config)).toThrow(ScheduleError);
    }
  });
});
