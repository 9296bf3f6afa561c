/**
 * diffusers' FlowMatchHeunDiscreteScheduler and TCDScheduler
 * (`reference-data/diffusers-schedulers-extra/classes.json`, made by diffusers' own classes, see its
 * README): timesteps exact, sigmas within 1e-6 + 1e-5 |ref|, and the sample after every `step` within
 * 1e-4 + 1e-4 |ref| under the closed-form model out(x, t) = A x + B t / 1000 + C (the flow velocity,
 * or the config's prediction), replaying every noise tensor TCD drew; diffusers' errors as typed ones.
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { parseDiffusersJson } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createScheduler,
  fromConfig,
  type Scheduler,
  type SchedulerClassName,
  SchedulerConfigError,
} from './index.js';
import { expectClose, loadRef, repoRoot } from './testing/refs.js';

interface Case {
  class: string;
  config: Record<string, unknown>;
  num_inference_steps: number;
  step_kwargs: { eta?: number };
  /** The model is out(x, t) = A x + B t / t_scale + C. */
  t_scale: number;
  timesteps?: number[];
  sigmas?: number[];
  samples?: number[][];
  noise?: (number[] | null)[];
  error?: string;
}
interface Swap {
  source: string;
  class: string;
  overrides: Record<string, unknown>;
  warnings: string[];
  resolved_config: Record<string, unknown>;
  run: Omit<Case, 'config'>;
}
const ref = loadRef<{
  x0: number[];
  model: { A: number; B: number; C: number };
  cases: Case[];
  swaps: Swap[];
}>('diffusers-schedulers-extra/classes.json');
const files = new Map(
  (
    JSON.parse(
      readFileSync(resolve(repoRoot, 'reference-data/real-configs/configs.json'), 'utf8'),
    ) as { configs: { id: string; raw: string }[] }
  ).configs.map((c) => [c.id, c.raw]),
);

/**
 * Classes whose timesteps are float functions of sigmas, not table indices: Cosine's atan(sigma) 2 / pi
 * (PyTorch's vectorised float32 exp / pow / atan are within an ulp, not correctly rounded as here), and
 * DPMSolverSDE's float64 `_sigma_to_t` of its midpoints (and Karras levels) against numpy's float32
 * log of the sigma table (numpy's SIMD log differs from the correctly rounded one in 155 of the 1000
 * entries of the default table by an ulp, which moves t by up to ~5e-5). They match as sigmas do.
 */
const CONTINUOUS = new Set(['CosineDPMSolverMultistepScheduler', 'DPMSolverSDEScheduler']);

/** Adapter classes with two model calls per step (diffusers lists each inner sigma twice). */
const TWO_STAGE = new Set(['DPMSolverSDEScheduler']);

/** Checks diffusers' timesteps, sigmas and trajectory of one case on the scheduler `s`. */
async function replay(s: Scheduler, c: Omit<Case, 'config'>): Promise<void> {
  s.setTimesteps(c.num_inference_steps);
  if (CONTINUOUS.has(s.className)) {
    expectClose(s.timesteps, c.timesteps!, 1e-6, 1e-5, 'timesteps');
  } else expect(s.timesteps).toEqual(c.timesteps!.map(Math.fround));
  if (c.sigmas) {
    // two-stage classes: diffusers repeats each inner sigma; `sigmas` here is the chain
    const want = TWO_STAGE.has(s.className)
      ? c.sigmas.filter((v, k) => k === 0 || v !== c.sigmas![k - 1])
      : c.sigmas;
    expectClose(s.sigmas, want, 1e-6, 1e-5, 'sigmas');
  }
  const { A, B, C } = ref.model;
  const got = await assertNoLeaks(async () => {
    let x: tf.Tensor = tf.tensor1d(ref.x0);
    const out: number[][] = [];
    for (const [k, t] of s.timesteps.entries()) {
      const m = tf.tidy(() => tf.add(tf.mul(x, A), B * (t / c.t_scale) + C));
      const z = c.noise![k] ? tf.tensor1d(c.noise![k]!) : undefined;
      const { prevSample, predOriginalSample } = s.step(m, t, x, {
        ...c.step_kwargs,
        ...(z ? { noise: z } : {}),
      });
      tf.dispose([m, x, predOriginalSample, ...(z ? [z] : [])]);
      x = prevSample;
      out.push(Array.from(await x.data()));
    }
    x.dispose();
    s.dispose();
    return out;
  });
  expect(got.length).toBe(c.samples!.length);
  for (let k = 0; k < got.length; k++)
    expectClose(got[k]!, c.samples![k]!, 1e-4, 1e-4, `step ${k}`);
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('scheduler classes against diffusers', () => {
  it('has every class, stochastic steps and errors among its cases', () => {
    const classes = new Set(ref.cases.map((c) => c.class));
    expect([...classes].sort()).toEqual([
      'CogVideoXDDIMScheduler',
      'CosineDPMSolverMultistepScheduler',
      'DPMSolverSDEScheduler',
      'FlowMatchHeunDiscreteScheduler',
      'TCDScheduler',
    ]);
    expect(ref.cases.some((c) => c.noise?.some((z) => z !== null))).toBe(true);
    expect(ref.cases.some((c) => c.error)).toBe(true);
  });
  for (const c of ref.cases) {
    const name = `${c.class} ${JSON.stringify(c.config)} n=${c.num_inference_steps} ${JSON.stringify(c.step_kwargs)}`;
    it(name, async () => {
      const s = createScheduler({ _class_name: c.class, ...c.config });
      if (c.error) {
        expect(() => s.setTimesteps(c.num_inference_steps)).toThrow(SchedulerConfigError);
        expect(() => s.setTimesteps(c.num_inference_steps)).toThrow(/original_inference_steps/);
        return;
      }
      await replay(s, c);
    });
  }
});

describe('what is not implemented is a typed error that says why', () => {
  it('CogVideoXDPMScheduler', () => {
    expect(() => createScheduler({ _class_name: 'CogVideoXDPMScheduler' })).toThrow(
      /does not implement \(its step is not the scheduler contract/,
    );
  });
});

describe('swaps of real files to these classes, as diffusers makes them', () => {
  for (const w of ref.swaps) {
    it(`${w.source} -> ${w.class} ${JSON.stringify(w.overrides)}`, async () => {
      const warnings: string[] = [];
      const s = fromConfig(
        parseDiffusersJson(files.get(w.source)!) as Record<string, unknown>,
        { ...w.overrides, _class_name: w.class as SchedulerClassName },
        { onWarning: (m) => warnings.push(m) },
      );
      const keys = (ws: readonly string[]) =>
        ws.flatMap((m) => [...m.matchAll(/'([A-Za-z0-9_]+)': /g)].map((x) => x[1]!)).sort();
      expect(keys(warnings)).toEqual(keys(w.warnings));
      const want = { ...w.resolved_config };
      if (Array.isArray(want._use_default_values))
        want._use_default_values = [...(want._use_default_values as string[])].sort();
      expect(s.toConfig()).toEqual(want);
      await replay(s, w.run);
    });
  }
});
