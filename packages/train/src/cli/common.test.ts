/**
 * `runRecipe`, the one training run of every `diffuse-train` command: its metrics file holds the
 * chosen run fields and the recipe's results (computed with the EMA weights, the ones saved), a run
 * that stopped part-way continues from its checkpoint exactly as an uninterrupted one, and nothing
 * leaks, also when a run fails.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertNoLeaks, initBackend, readFloat32 } from '@diffuse/backend';
import { eightGaussians } from '@diffuse/data';
import { uniformTimeSampler } from '@diffuse/losses';
import { Ema, Mlp, mlpConfig } from '@diffuse/models';
import { loadModelFiles } from '@diffuse/models/node';
import { CosineSchedule } from '@diffuse/schedules';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DiffusionBatch } from '../diffusion.js';
import {
  type CommonOptions,
  gradientsFor,
  type RecipeRun,
  RUN_RECORD_FIELDS,
  runRecipe,
} from './common.js';

let dir: string;

beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'diffuse-recipe-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const STEPS = 8;

function options(name: string): CommonOptions {
  return {
    out: join(dir, name, 'out', 'toy'),
    checkpoints: join(dir, name, 'ck'),
    steps: STEPS,
    minutes: Number.POSITIVE_INFINITY,
    seed: 3,
    backend: 'wasm',
    batchSize: 32,
    learningRate: 2e-3,
    workers: 0,
  };
}

/**
 * A tiny conditional MLP on the eight-Gaussians toy, as `diffuse-train mixture` trains it; the data
 * source throws on its call number `failAt` (a crash mid-run). Returns the run and what the results
 * callback read of the first parameter.
 */
async function train(
  o: CommonOptions,
  failAt = Number.POSITIVE_INFINITY,
): Promise<{ run: RecipeRun; probe: number; parameters: number }> {
  const toy = eightGaussians();
  const model = new Mlp(
    mlpConfig({ dim: 2, width: 16, depth: 1, embedDim: 8, numClasses: toy.numClasses }),
    { seed: o.seed },
  );
  const parameters = model.numParams;
  let calls = 0;
  let probe = Number.NaN;
  const run = await runRecipe<DiffusionBatch>(o, {
    label: 'toy',
    model,
    ema: new Ema(model.params, { decay: 0.9, warmup: true }),
    data: (rng) => {
      calls += 1;
      if (calls === failAt) throw new Error('data source failed');
      return toy.sample(o.batchSize, rng);
    },
    objective: await gradientsFor(
      model,
      { sampler: uniformTimeSampler(new CosineSchedule()), condDropout: 0.1 },
      o,
    ),
    optimizer: { warmupSteps: 2, clipNorm: 1, minLearningRate: o.learningRate / 20 },
    checkpointEvery: 3,
    results: async () => {
      probe = (await readFloat32(model.params[0]!))[0]!;
      return { probe };
    },
  });
  return { run, probe, parameters };
}

const readMetrics = async (o: CommonOptions) =>
  JSON.parse(await readFile(`${o.out}.metrics.json`, 'utf8')) as Record<string, unknown>;

describe('runRecipe', () => {
  it('writes the run record and the results, and resumes a crashed run exactly', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      // uninterrupted
      const a = options('a');
      const whole = await assertNoLeaks(() => train(a), 'uninterrupted run');
      expect(whole.run.losses).toHaveLength(STEPS);
      const metrics = await readMetrics(a);
      expect(Object.keys(metrics)).toEqual([...RUN_RECORD_FIELDS, 'probe']);
      expect(RUN_RECORD_FIELDS).toHaveLength(7);
      expect(metrics.command).toMatch(/^diffuse-train/);
      expect(metrics.steps).toBe(STEPS);
      expect(metrics.plannedSteps).toBe(STEPS);
      expect(metrics.batchSize).toBe(32);
      expect(metrics.parameters).toBe(whole.parameters);
      expect(metrics.secondsThisRun).toBe(whole.run.summary.seconds);
      expect(metrics.meanLossLast100).toBeCloseTo(
        whole.run.losses.reduce((s, v) => s + v, 0) / STEPS,
        12,
      );
      // results ran with the EMA weights in place: the weights that were saved
      const saved = await loadModelFiles(a.out);
      expect((await readFloat32(saved.params[0]!))[0]).toBe(metrics.probe);
      saved.dispose();

      // crashed at step 7 (last checkpoint: step 6), then started again
      const b = options('b');
      await assertNoLeaks(async () => {
        await expect(train(b, 7)).rejects.toThrow('data source failed');
      }, 'crashed run');
      log.mockClear();
      const resumed = await assertNoLeaks(() => train(b), 'resumed run');
      expect(log).toHaveBeenCalledWith('resumed from step 6');
      expect(resumed.run.summary.step).toBe(STEPS);
      expect(resumed.run.losses).toEqual(whole.run.losses);
      expect(resumed.probe).toBe(whole.probe);
      const again = await readMetrics(b);
      expect(Object.keys(again)).toEqual(Object.keys(metrics));
      expect(again.meanLossLast100).toBe(metrics.meanLossLast100);
    } finally {
      log.mockRestore();
    }
  });

  it('writes only the chosen run fields, in their order, before the results', async () => {
    const o = options('c');
    const toy = eightGaussians();
    const model = new Mlp(mlpConfig({ dim: 2, width: 8, depth: 1, embedDim: 8 }), { seed: 1 });
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await assertNoLeaks(
        async () =>
          runRecipe<DiffusionBatch>(
            { ...o, steps: 2 },
            {
              label: 'toy',
              model,
              data: (rng) => toy.sample(8, rng),
              objective: await gradientsFor(
                model,
                { sampler: uniformTimeSampler(new CosineSchedule()) },
                o,
              ),
              optimizer: {},
              checkpointEvery: 5,
              record: ['steps', 'command'],
              results: () => ({ heldOut: 1 }),
            },
          ).then(() => undefined),
        'run without EMA',
      );
    } finally {
      log.mockRestore();
    }
    expect(Object.keys(await readMetrics(o))).toEqual(['steps', 'command', 'heldOut']);
  });
});
