/**
 * The 30 real `scheduler_config.json` files of `reference-data/real-configs/` loaded through
 * `createScheduler` and swapped through `fromConfig`, against what diffusers 0.40 did with each
 * (`refs.json`): load warnings, ignored keys, the resolved `scheduler.config`, `init_noise_sigma`,
 * timesteps and sigmas at 1 / 4 / 20 / 50 steps (and diffusers' errors), and 10-step trajectories under
 * the exact closed-form mixture model, replaying every recorded noise draw.
 *
 * Tolerances (issue 16): timesteps exact; sigmas and init_noise_sigma 1e-6 + 1e-5 |ref|; trajectories
 * 1e-4 + 1e-4 |ref| (diffusers' tables are float32, the model float64; here the model is float64 and
 * every step float32 on wasm).
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
import { expectClose, repoRoot } from './testing/refs.js';

type Matrix = number[][];
interface Trajectory {
  num_inference_steps: number;
  output_kind: 'epsilon' | 'sample' | 'v_prediction' | 'flow' | 'flow_dataward';
  timesteps: number[];
  model_levels: [number, number][];
  x_init: Matrix;
  samples_after_step: Matrix[];
  final: Matrix;
  stochastic?: { noise_draws: Matrix[][] };
  set_timesteps_kwargs?: { mu?: number };
}
interface SetTimestepsRef {
  error?: string;
  timesteps?: number[];
  timesteps_dtype?: string;
  sigmas?: number[];
  init_noise_sigma?: number | null;
  set_timesteps_kwargs?: { mu?: number };
}
interface SwapRef {
  name: string;
  class_name: string;
  overrides: Record<string, unknown>;
  status: string;
  error?: string;
  warnings: string[];
  resolved_config: Record<string, unknown>;
  init_noise_sigma: number | null;
  set_timesteps: Record<string, SetTimestepsRef>;
  trajectory: Trajectory;
}
interface Result {
  id: string;
  class_name: string;
  status: string;
  unsupported_reason?: string;
  load: { warnings: string[]; keys_not_init_params: string[] };
  resolved_config: Record<string, unknown>;
  init_noise_sigma: number | null;
  set_timesteps: Record<string, SetTimestepsRef>;
  trajectory: Trajectory;
  swaps: SwapRef[];
}
interface Refs {
  mixture: { weights: number[]; means: number[][]; covariances: number[][][] };
  steps_checked: number[];
  results: Result[];
}

const dir = resolve(repoRoot, 'reference-data/real-configs');
const refs = JSON.parse(readFileSync(resolve(dir, 'refs.json'), 'utf8')) as Refs;
const files = new Map(
  (
    JSON.parse(readFileSync(resolve(dir, 'configs.json'), 'utf8')) as {
      configs: { id: string; raw: string }[];
    }
  ).configs.map((c) => [c.id, c.raw]),
);

const NONFINITE: Record<string, number> = {
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
  NaN: Number.NaN,
};
/** refs.json writes non-finite numbers as strings; our configs hold numbers. */
function pythonConfig(c: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) {
    out[k] = typeof v === 'string' && v in NONFINITE ? NONFINITE[v] : v;
    if (k === '_use_default_values') out[k] = [...(v as string[])].sort();
  }
  return out;
}

/** The keys a diffusers load warning names (`The config attributes {'a': 1, 'b': None} were ...`). */
function warnedKeys(warnings: readonly string[]): string[] {
  return warnings.flatMap((w) => [...w.matchAll(/'([A-Za-z0-9_]+)': /g)].map((m) => m[1]!)).sort();
}

/** The exact posterior of the 2-D mixture at x = alpha x0 + sigma eps (refs README), float64. */
function mixtureModel(x: Matrix, alpha: number, sigma: number, kind: Trajectory['output_kind']) {
  const { weights, means, covariances } = refs.mixture;
  return x.map((xi) => {
    const logp: number[] = [];
    const parts: { cinv: number[]; diff: number[]; S: number[][] }[] = [];
    for (let k = 0; k < weights.length; k++) {
      const S = covariances[k]!;
      const c = [
        alpha * alpha * S[0]![0]! + sigma * sigma,
        alpha * alpha * S[0]![1]!,
        alpha * alpha * S[1]![0]!,
        alpha * alpha * S[1]![1]! + sigma * sigma,
      ];
      const det = c[0]! * c[3]! - c[1]! * c[2]!;
      const cinv = [c[3]! / det, -c[1]! / det, -c[2]! / det, c[0]! / det];
      const diff = [xi[0]! - alpha * means[k]![0]!, xi[1]! - alpha * means[k]![1]!];
      const q =
        diff[0]! * (cinv[0]! * diff[0]! + cinv[1]! * diff[1]!) +
        diff[1]! * (cinv[2]! * diff[0]! + cinv[3]! * diff[1]!);
      logp.push(Math.log(weights[k]!) - 0.5 * q - 0.5 * Math.log(det) - Math.log(2 * Math.PI));
      parts.push({ cinv, diff, S });
    }
    const m = Math.max(...logp);
    const r = logp.map((l) => Math.exp(l - m));
    const z = r.reduce((a, b) => a + b, 0);
    const eps = [0, 0];
    const x0 = [0, 0];
    parts.forEach(({ cinv, diff, S }, k) => {
      const w = r[k]! / z;
      const cd = [
        cinv[0]! * diff[0]! + cinv[1]! * diff[1]!,
        cinv[2]! * diff[0]! + cinv[3]! * diff[1]!,
      ];
      for (let d = 0; d < 2; d++) {
        eps[d]! += w * sigma * cd[d]!;
        x0[d]! += w * (means[k]![d]! + alpha * (S[d]![0]! * cd[0]! + S[d]![1]! * cd[1]!));
      }
    });
    return [0, 1].map((d) => {
      switch (kind) {
        case 'epsilon':
          return eps[d]!;
        case 'sample':
          return x0[d]!;
        case 'v_prediction':
          return alpha * eps[d]! - sigma * x0[d]!;
        case 'flow':
          return eps[d]! - x0[d]!;
        case 'flow_dataward':
          return x0[d]! - eps[d]!;
        default:
          throw new Error(`unknown output_kind ${kind}`);
      }
    });
  });
}

function checkSetTimesteps(s: Scheduler, n: number, ref: SetTimestepsRef) {
  // diffusers' Wuerstchen list ends with t = 0, which its pipeline never steps; ours lists model calls
  const want =
    s.className === 'DDPMWuerstchenScheduler' ? ref.timesteps?.slice(0, -1) : ref.timesteps;
  const mu = ref.set_timesteps_kwargs?.mu;
  if (ref.error !== undefined) {
    expect(() => s.setTimesteps(n, mu === undefined ? {} : { mu })).toThrow();
    return;
  }
  s.setTimesteps(n, mu === undefined ? {} : { mu });
  expect(s.timesteps, `timesteps at n = ${n}`).toEqual(want);
  if (ref.sigmas) expectClose(s.sigmas, ref.sigmas, 1e-6, 1e-5);
  expectClose([s.initNoiseSigma], [ref.init_noise_sigma ?? 1], 1e-6, 1e-5);
}

async function checkTrajectory(s: Scheduler, traj: Trajectory) {
  const mu = traj.set_timesteps_kwargs?.mu;
  s.setTimesteps(traj.num_inference_steps, mu === undefined ? {} : { mu });
  const ts = s.timesteps.slice(0, traj.timesteps.length);
  expect(ts).toEqual(traj.timesteps);
  let x = tf.tensor(traj.x_init);
  const draws = traj.stochastic?.noise_draws;
  for (let i = 0; i < ts.length; i++) {
    const xin = s.scaleModelInput(x, ts[i]!);
    const [alpha, sigma] = traj.model_levels[i]!;
    const out = tf.tensor(mixtureModel(xin.arraySync() as Matrix, alpha, sigma, traj.output_kind));
    const noise = draws?.[i]?.[0] ? tf.tensor(draws[i]![0]!) : undefined;
    const { prevSample, predOriginalSample } = s.step(out, ts[i]!, x, noise ? { noise } : {});
    tf.dispose([xin, out, noise, predOriginalSample, x].filter((t) => t !== undefined));
    x = prevSample;
    expectClose(Array.from(x.dataSync()), traj.samples_after_step[i]!.flat(), 1e-4, 1e-4);
  }
  expectClose(Array.from(x.dataSync()), traj.final.flat(), 1e-4, 1e-4);
  x.dispose();
  s.dispose();
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('real diffusers configs: load as diffusers loads them', () => {
  it.each(refs.results.map((r) => [r.id, r] as const))('%s', async (id, r) => {
    const config = parseDiffusersJson(files.get(id)!, id) as Record<string, unknown>;
    if (r.status !== 'ok') {
      expect(() => createScheduler(config)).toThrow(SchedulerConfigError);
      expect(() => createScheduler(config)).toThrow(/Flax .*cannot load this file either/);
      return;
    }
    const warnings: string[] = [];
    await assertNoLeaks(async () => {
      const s = createScheduler(config, { onWarning: (w) => warnings.push(w) });
      expect(s.className).toBe(r.class_name);
      expect(warnings.length).toBe(r.load.warnings.length);
      expect(warnedKeys(warnings)).toEqual(warnedKeys(r.load.warnings));
      expect([...s.ignoredKeys].sort()).toEqual([...r.load.keys_not_init_params].sort());
      expect(pythonConfig(s.toConfig())).toEqual(pythonConfig(r.resolved_config));
      for (const n of refs.steps_checked) checkSetTimesteps(s, n, r.set_timesteps[String(n)]!);
      await checkTrajectory(s, r.trajectory);
      // strict mode throws on exactly the keys the class does not take
      if (r.load.keys_not_init_params.length > 0) {
        expect(() => createScheduler(config, { strict: true })).toThrow(SchedulerConfigError);
      } else {
        createScheduler(config, { strict: true }).dispose();
      }
    }, id);
  });
});

describe('real diffusers configs: the four class swaps, as diffusers swaps them', () => {
  const cases = refs.results
    .filter((r) => r.status === 'ok')
    .flatMap((r) => r.swaps.map((w) => [`${r.id} -> ${w.name}`, r, w] as const));
  it.each(cases)('%s', async (_name, r, w) => {
    const config = parseDiffusersJson(files.get(r.id)!, r.id) as Record<string, unknown>;
    const source = createScheduler(config, { onWarning: () => {} });
    // A class name read from a file is untyped: name it as a SchedulerClassName (checked at run time).
    const overrides = { _class_name: w.class_name as SchedulerClassName, ...w.overrides };
    if (w.status !== 'ok') {
      expect(() => fromConfig(source, overrides, { onWarning: () => {} })).toThrow(
        SchedulerConfigError,
      );
      return;
    }
    const warnings: string[] = [];
    await assertNoLeaks(async () => {
      const s = fromConfig(source, overrides, { onWarning: (m) => warnings.push(m) });
      expect(s.className).toBe(w.class_name);
      expect(warnedKeys(warnings)).toEqual(warnedKeys(w.warnings));
      expect(pythonConfig(s.toConfig())).toEqual(pythonConfig(w.resolved_config));
      expectClose([s.initNoiseSigma], [w.init_noise_sigma ?? 1], 1e-6, 1e-5);
      for (const [n, ref] of Object.entries(w.set_timesteps)) checkSetTimesteps(s, Number(n), ref);
      await checkTrajectory(s, w.trajectory);
    }, w.name);
  });
});
