/**
 * `diffuse-train flow-mixture`, briefly: the recipe trains the toy rectified-flow MLP, writes its
 * weights and metrics, resumes from its checkpoint; on the saved model, diffusers' flow scheduler
 * classes are `sample()`'s flow samplers once their t = 1 start is behind them (FlowMatchEuler: `euler`,
 * FlowMatchHeun: `flow_heun`, on the same levels in the VE view), and sampling beats plain noise.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import { eightGaussians } from '@diffuse/data';
import type { Mlp } from '@diffuse/models';
import { loadModelFiles } from '@diffuse/models/node';
import { createScheduler, sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { energyDistance } from '../metrics.js';
import type { CommonOptions } from './common.js';
import { evaluateFlowMixtureModel, FLOW_T_MAX, trainFlowMixture } from './flow-mixture.js';

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'diffuse-flow-recipe-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const options = (steps: number): CommonOptions => ({
  out: join(dir, 'out', 'flow'),
  checkpoints: join(dir, 'ck'),
  steps,
  minutes: Number.POSITIVE_INFINITY,
  seed: 2,
  backend: 'wasm',
  batchSize: 128,
  learningRate: 3e-3,
  workers: 0,
});

/** The state after each call of a diffusers flow class on `model` from `z` (t = timestep / 1000). */
function schedulerRun(model: Mlp, className: string, steps: number, z: tf.Tensor) {
  const s = createScheduler({ _class_name: className, shift: 3 });
  s.setTimesteps(steps);
  const states: tf.Tensor[] = [];
  let x = z; // states[k] is the state after call k (the caller disposes them)
  for (const t of s.timesteps) {
    const tt = Math.min(t / 1000, FLOW_T_MAX);
    const u = model.predict(x, { alpha: 1 - tt, sigma: tt });
    const r = s.step(u, t, x);
    tf.dispose([u, r.predOriginalSample]);
    x = r.prevSample;
    states.push(x);
  }
  const sigmas = s.sigmas;
  s.dispose();
  return { states, sigmas };
}

describe('diffuse-train flow-mixture', () => {
  it('trains, writes, resumes; the flow classes are the flow samplers on the trained model', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await assertNoLeaks(() => trainFlowMixture(options(150), { n: 300, steps: 8 }), 'train');
      const metrics = JSON.parse(
        await readFile(`${join(dir, 'out', 'flow')}.metrics.json`, 'utf8'),
      );
      expect(metrics.steps).toBe(150);
      const m = metrics.metrics as Record<string, number>;
      expect(Object.keys(m).sort()).toEqual(
        [
          'energyDataVsData',
          'energy_euler',
          'energy_heun',
          'energy_dpmpp_2m',
          'energy_FlowMatchEulerDiscreteScheduler',
          'energy_FlowMatchHeunDiscreteScheduler',
        ].sort(),
      );
      for (const v of Object.values(m)) expect(Number.isFinite(v)).toBe(true);
      log.mockClear();
      const resumed = await assertNoLeaks(
        () => trainFlowMixture(options(160), { n: 100, steps: 4 }),
        'resume',
      );
      expect(log).toHaveBeenCalledWith('resumed from step 150');
      expect(resumed.summary.step).toBe(160);
    } finally {
      log.mockRestore();
    }

    const model = (await loadModelFiles(join(dir, 'out', 'flow'))) as Mlp;
    expect(model.prediction).toBe('flow');
    const n = 400;
    const z = Random.seed(5).normal([n, 2]);
    await assertNoLeaks(async () => {
      const cases = [
        ['FlowMatchEulerDiscreteScheduler', 'euler', 1],
        ['FlowMatchHeunDiscreteScheduler', 'flow_heun', 2],
      ] as const;
      for (const [cls, sampler, callsPerStep] of cases) {
        const { states, sigmas } = schedulerRun(model, cls, 8, z);
        // after the first step (t = 1 -> t1), the rest of the run is sample(sampler) on the VE levels
        const after = states[callsPerStep - 1]!;
        const levels = [...new Set(sigmas)].slice(1);
        const t1 = levels[0]!;
        const noise = tf.div(after, t1); // x_VE = x_t / (1 - t1) = noise * t1 / (1 - t1)
        const out = await sample(model, {
          sampler,
          sigmas: levels.map((t) => t / (1 - t)),
          embedding: 'flow',
          noise,
        });
        const last = states[states.length - 1]!;
        const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(out, last))));
        expect((await diff.data())[0], cls).toBeLessThan(1e-4);
        tf.dispose([noise, out, diff, ...states]);
      }
    }, 'flow classes');

    // the trained model's samples are closer to the data than its starting noise
    const data = eightGaussians().sample(n, Random.seed(6));
    const a = Float64Array.from(await data.x.data());
    const { states } = schedulerRun(model, 'FlowMatchHeunDiscreteScheduler', 8, z);
    const ed = energyDistance(Float64Array.from(await states[states.length - 1]!.data()), a, 2);
    const edNoise = energyDistance(Float64Array.from(await z.data()), a, 2);
    expect(ed).toBeLessThan(edNoise / 4);
    tf.dispose([data.x, data.labels, z, ...states]);
    model.dispose();
  }, 120_000);

  it('the shipped weights (weights/flow-mixture-mlp) give their metrics file: near the data', async () => {
    const base = join(
      dirname(fileURLToPath(import.meta.url)),
      '..',
      '..',
      'weights',
      'flow-mixture-mlp',
    );
    const shipped = JSON.parse(await readFile(`${base}.metrics.json`, 'utf8')).metrics as Record<
      string,
      number
    >;
    const model = (await loadModelFiles(base)) as Mlp;
    const m = await assertNoLeaks(() => evaluateFlowMixtureModel(model, eightGaussians()), 'eval');
    model.dispose();
    for (const [k, v] of Object.entries(shipped)) expect(m[k], k).toBeCloseTo(v, 6);
    for (const [k, v] of Object.entries(m))
      if (k !== 'energyDataVsData') expect(v, k).toBeLessThan(4 * m.energyDataVsData!);
  }, 120_000);
});
