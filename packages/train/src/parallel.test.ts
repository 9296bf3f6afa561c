import { InvalidArgumentError, initBackend, liveTensors, Random } from '@diffuse/backend';
import { minSNRWeighting, uniformTimeSampler } from '@diffuse/losses';
import { Mlp, mlpConfig, type NetworkDenoiser, UNet, unetConfig } from '@diffuse/models';
import { CosineSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DiffusionBatch,
  type DiffusionLossOptions,
  diffusionLoss,
  ParallelGradients,
  shardBounds,
  TrainError,
  Trainer,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const sampler = uniformTimeSampler(new CosineSchedule());

/** Toy data from the trainer's stream: n examples of `shape`, with labels when `classes` > 0. */
function data(n: number, shape: number[], classes: number) {
  return (rng: Random): DiffusionBatch => {
    const x = tf.tidy(() => tf.add(tf.mul(rng.normal([n, ...shape]), 0.5), 0.3));
    if (classes === 0) return { x };
    const labels = Int32Array.from({ length: n }, () => rng.int(classes));
    return { x, labels: tf.tensor1d(labels, 'int32') };
  };
}

/** `steps` Adam steps from one seed; returns the losses, final parameters and gradient norms. */
async function train(
  make: () => NetworkDenoiser,
  lossOptions: DiffusionLossOptions,
  batch: (rng: Random) => DiffusionBatch,
  steps: number,
  workers: number,
) {
  const model = make();
  const gradients =
    workers > 0 ? await ParallelGradients.create(model, lossOptions, { workers }) : undefined;
  const trainer = new Trainer<DiffusionBatch>({
    params: model.params,
    ...(gradients !== undefined ? { gradients } : { loss: diffusionLoss(model, lossOptions) }),
    data: batch,
    seed: 7,
    optimizer: { learningRate: 1e-3, clipNorm: 1 }, // lr as in the tolerance below
  });
  const start = await Promise.all(model.params.map((p) => p.data<'float32'>()));
  const norms: number[] = [];
  for (let i = 0; i < steps; i++) norms.push((await trainer.trainStep()).gradNorm);
  const params = await Promise.all(model.params.map((p) => p.data<'float32'>()));
  trainer.dispose();
  await gradients?.dispose();
  model.dispose();
  return { losses: [...trainer.losses], params, norms, start };
}

/** max |a - b| / (max |b| over the tensor), over every parameter tensor. */
function maxParamDiff(a: Float32Array[], b: Float32Array[]): { abs: number; rel: number } {
  let abs = 0;
  let rel = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    let d = 0;
    let scale = 0;
    for (let j = 0; j < x.length; j++) {
      d = Math.max(d, Math.abs(x[j]! - y[j]!));
      scale = Math.max(scale, Math.abs(y[j]!));
    }
    abs = Math.max(abs, d);
    rel = Math.max(rel, d / Math.max(scale, 1e-12));
  });
  return { abs, rel };
}

/** ||a - b|| / ||b - start||: the difference of two runs relative to the distance b travelled. */
function updateDiff(a: Float32Array[], b: Float32Array[], start: Float32Array[]): number {
  let num = 0;
  let den = 0;
  a.forEach((x, i) => {
    for (let j = 0; j < x.length; j++) {
      num += (x[j]! - b[i]![j]!) ** 2;
      den += (b[i]![j]! - start[i]![j]!) ** 2;
    }
  });
  return Math.sqrt(num / den);
}

function relDiff(a: number[], b: number[]): number {
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.abs(b[i]!)));
}

describe('shardBounds', () => {
  it('splits n rows into contiguous runs differing by at most one', () => {
    expect(shardBounds(10, 2)).toEqual([
      [0, 5],
      [5, 10],
    ]);
    expect(shardBounds(7, 3)).toEqual([
      [0, 3],
      [3, 5],
      [5, 7],
    ]);
    expect(shardBounds(1, 4)).toEqual([[0, 1]]);
  });
});

describe('ParallelGradients: the same training as one thread', () => {
  // Tolerance (README, "Both cores"): float32 summation order is the only difference. After 5 Adam
  // steps (lr 1e-3): losses within 1e-5 relative, gradient norms within 1e-4, the parameters' total
  // update within 1e-4 of its length, and every parameter within 1% of one learning-rate step
  // (1e-5). Per-tensor relative agreement is not a fair test: parameters whose exact gradient is 0
  // (the U-Net's attention key biases: softmax ignores a shift shared by all keys) move on float
  // noise, which Adam normalises to steps of up to lr. The MLPs have none and agree to 1e-5 relative.
  const lr = 1e-3;
  it('MLP, unconditional, 2 workers, 5 steps', async () => {
    const make = () => new Mlp(mlpConfig({ dim: 2, width: 32, depth: 2 }), { seed: 3 });
    const opts = { sampler };
    const one = await train(make, opts, data(64, [2], 0), 5, 0);
    const two = await train(make, opts, data(64, [2], 0), 5, 2);
    const d = maxParamDiff(two.params, one.params);
    expect(relDiff(two.losses, one.losses)).toBeLessThan(1e-5);
    expect(relDiff(two.norms, one.norms)).toBeLessThan(1e-4);
    expect(updateDiff(two.params, one.params, one.start)).toBeLessThan(1e-4);
    expect(d.abs).toBeLessThan(1e-2 * lr);
    expect(d.rel).toBeLessThan(1e-5);
  }, 30_000);

  it('conditional MLP with dropout, v-prediction, min-SNR weights, uneven shards (33 rows)', async () => {
    const make = () =>
      new Mlp(mlpConfig({ dim: 3, width: 32, depth: 1, numClasses: 4, prediction: 'v' }), {
        seed: 5,
      });
    const opts = { sampler, condDropout: 0.3, weighting: minSNRWeighting(5) };
    const one = await train(make, opts, data(33, [3], 4), 5, 0);
    const two = await train(make, opts, data(33, [3], 4), 5, 2);
    const d = maxParamDiff(two.params, one.params);
    expect(relDiff(two.losses, one.losses)).toBeLessThan(1e-5);
    expect(relDiff(two.norms, one.norms)).toBeLessThan(1e-4);
    expect(updateDiff(two.params, one.params, one.start)).toBeLessThan(1e-4);
    expect(d.abs).toBeLessThan(1e-2 * lr);
    expect(d.rel).toBeLessThan(1e-5);
  }, 30_000);

  it('tiny class-conditional U-Net, 2 workers, 3 steps', async () => {
    const make = () =>
      new UNet(
        unetConfig({
          imageShape: [8, 8, 1],
          channels: 8,
          channelMults: [1, 2],
          numResBlocks: 1,
          attentionResolutions: [4],
          groups: 4,
          embedDim: 16,
          numClasses: 3,
        }),
        { seed: 2 },
      );
    const opts = { sampler, condDropout: 0.2 };
    const one = await train(make, opts, data(6, [8, 8, 1], 3), 3, 0);
    const two = await train(make, opts, data(6, [8, 8, 1], 3), 3, 2);
    const d = maxParamDiff(two.params, one.params);
    expect(relDiff(two.losses, one.losses)).toBeLessThan(1e-5);
    expect(relDiff(two.norms, one.norms)).toBeLessThan(1e-4);
    expect(updateDiff(two.params, one.params, one.start)).toBeLessThan(1e-4);
    expect(d.abs).toBeLessThan(1e-2 * lr);
  }, 60_000);
});

describe('ParallelGradients: errors and lifecycle', () => {
  let model: Mlp;
  beforeAll(() => {
    model = new Mlp(mlpConfig({ dim: 2, width: 16, depth: 1 }), { seed: 1 });
  });
  afterAll(() => model.dispose());

  it('a worker failure is a TrainError that names the worker and the error', async () => {
    const pg = await ParallelGradients.create(model, { sampler }, { workers: 2 });
    const x = tf.zeros([8, 3]); // the model expects [batch, 2]
    const before = liveTensors();
    await expect(pg.compute({ x }, Random.seed(0), model.params)).rejects.toThrow(
      /gradient worker 0 failed: ModelError.*expects x of shape \[batch, 2\]/,
    );
    expect(liveTensors()).toBe(before);
    // the pool still works after a failed step
    const ok = tf.zeros([8, 2]);
    const { loss, grads } = await pg.compute({ x: ok }, Random.seed(0), model.params);
    expect(Number.isFinite((await loss.data())[0]!)).toBe(true);
    tf.dispose([loss, ...grads.filter((g) => g !== undefined), x, ok]);
    await pg.dispose();
  }, 30_000);

  it('refuses what it cannot run, with TrainErrors', async () => {
    await expect(ParallelGradients.create(model, { sampler }, { workers: 0 })).rejects.toThrow(
      TrainError,
    );
    const notANetwork = { prediction: 'epsilon', predict: () => tf.scalar(0) };
    await expect(
      ParallelGradients.create(notANetwork as unknown as NetworkDenoiser, { sampler }),
    ).rejects.toThrow(/Mlp or UNet/);
    const pg = await ParallelGradients.create(model, { sampler }, { workers: 1 });
    // a Trainer takes exactly one of `loss` and `gradients`
    const data = () => ({ x: tf.zeros([4, 2]) });
    expect(() => new Trainer({ params: model.params, data, seed: 0 })).toThrow(
      InvalidArgumentError,
    );
    expect(
      () =>
        new Trainer({
          params: model.params,
          data,
          seed: 0,
          gradients: pg,
          loss: diffusionLoss(model, { sampler }),
        }),
    ).toThrow(/exactly one of `loss` and `gradients`/);
    const x = tf.zeros([4, 2]);
    await expect(pg.compute({ x }, Random.seed(0), model.params.slice(1))).rejects.toThrow(
      /not the model's/,
    );
    x.dispose();
    await pg.dispose();
  }, 30_000);

  it('a worker script that crashes fails create() with a TrainError', async () => {
    const bad = new URL(`data:text/javascript,${encodeURIComponent('throw new Error("boom")')}`);
    await expect(
      ParallelGradients.create(model, { sampler }, { workers: 1, workerUrl: bad }),
    ).rejects.toThrow(/gradient worker 0 crashed: Error: boom/);
  }, 30_000);

  it('dispose and abort terminate the workers; later steps fail with TrainError', async () => {
    const x = tf.zeros([4, 2]);
    const pg = await ParallelGradients.create(model, { sampler }, { workers: 2 });
    const trainer = new Trainer<DiffusionBatch>({
      params: model.params,
      gradients: pg,
      data: () => ({ x: tf.clone(x) }),
      seed: 0,
    });
    expect(pg.lastTimings).toBeNull();
    await trainer.trainStep();
    const t = pg.lastTimings!;
    expect(t.workersMs).toBeGreaterThan(0);
    expect(t.prepareMs).toBeGreaterThanOrEqual(0);
    expect(t.reduceMs).toBeGreaterThanOrEqual(0);
    const before = liveTensors();
    await trainer.trainStep();
    expect(liveTensors()).toBe(before); // nothing leaks on the coordinator
    trainer.dispose(); // disposes the workers too
    expect(pg.disposed).toBe(true);
    await pg.dispose();
    await expect(trainer.trainStep()).rejects.toThrow(/disposed/);

    const controller = new AbortController();
    const pg2 = await ParallelGradients.create(
      model,
      { sampler },
      {
        workers: 1,
        signal: controller.signal,
      },
    );
    const inFlight = pg2.compute({ x }, Random.seed(1), model.params);
    controller.abort();
    expect(pg2.disposed).toBe(true);
    await expect(inFlight).rejects.toThrow(TrainError);
    await expect(pg2.compute({ x }, Random.seed(1), model.params)).rejects.toThrow(/disposed/);
    x.dispose();
  }, 30_000);
});
