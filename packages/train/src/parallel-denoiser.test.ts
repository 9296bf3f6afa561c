import { assertNoLeaks, initBackend, liveTensors, Random } from '@diffuse/backend';
import { classifierFreeGuidance } from '@diffuse/guidance';
import { Mlp, mlpConfig, type NetworkDenoiser, UNet, unetConfig } from '@diffuse/models';
import { sample } from '@diffuse/samplers';
import type { NoiseLevel, Scalar } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParallelDenoiser, TrainError } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

// Tolerance (README, "Both cores for sampling"): a worker runs the same float32 kernels on its rows
// as the main thread does on the whole batch, so one forward pass must agree to 1e-6 of the output's
// scale (measured: 0, bit for bit, for all three networks on wasm), and a 10-step sampling run,
// which feeds every output back in, to 1e-5.
const FORWARD_TOL = 1e-6;
const SAMPLE_TOL = 1e-5;

/** max |a - b| / max |b|. */
async function relDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  expect(a.shape).toEqual(b.shape);
  const [x, y] = await Promise.all([a.data<'float32'>(), b.data<'float32'>()]);
  let d = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  expect(scale).toBeGreaterThan(0);
  return d / scale;
}

interface Case {
  name: string;
  make: (seed: number) => NetworkDenoiser;
  classes: number;
}

const CASES: Case[] = [
  {
    name: 'MLP denoiser',
    make: (seed) => new Mlp(mlpConfig({ dim: 2, width: 64, depth: 2 }), { seed }),
    classes: 0,
  },
  {
    name: 'class-conditional MLP (v-prediction)',
    make: (seed) =>
      new Mlp(mlpConfig({ dim: 3, width: 32, depth: 1, numClasses: 4, prediction: 'v' }), {
        seed,
      }),
    classes: 4,
  },
  {
    name: 'class-conditional U-Net with attention',
    make: (seed) =>
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
        { seed },
      ),
    classes: 3,
  },
];

/** Labels for n rows, the null class (classifier-free guidance's "unconditional") among them. */
function labels(n: number, classes: number): tf.Tensor {
  return tf.tensor1d(
    Int32Array.from({ length: n }, (_, i) => i % (classes + 1)),
    'int32',
  );
}

for (const c of CASES) {
  describe(`ParallelDenoiser, 2 workers: ${c.name}`, () => {
    let model: NetworkDenoiser;
    let pd: ParallelDenoiser;
    beforeAll(async () => {
      model = c.make(3);
      pd = await ParallelDenoiser.create(model, { workers: 2 });
    }, 30_000);
    afterAll(async () => {
      await pd?.dispose();
      model?.dispose();
    });

    it('declares what the network declares', () => {
      expect(pd.prediction).toBe(model.prediction);
      expect(pd.shape).toEqual(model.shape);
      expect(pd.numClasses).toBe(model.numClasses);
      expect(pd.workers).toBe(2);
      expect(pd.backend).toBe('wasm');
    });

    for (const n of [1, 3, 8]) {
      it(`batch ${n}: the forward pass equals the main thread's (shared and per-example levels)`, async () => {
        const rng = Random.seed(10 + n);
        const x = rng.normal([n, ...model.shape]);
        const cond = c.classes > 0 ? { labels: labels(n, c.classes) } : undefined;
        // one level for the batch, as while sampling
        const shared = { alpha: 0.8, sigma: 0.6 };
        // one level per example, [n, 1, ...] as while training
        const ones = model.shape.map(() => 1);
        const a = Float32Array.from({ length: n }, (_, i) => 0.2 + (0.7 * i) / Math.max(n - 1, 1));
        const perExample: NoiseLevel<Scalar> = {
          alpha: tf.tensor(a, [n, ...ones]),
          sigma: tf.tensor(
            a.map((v) => Math.sqrt(1 - v * v)),
            [n, ...ones],
          ),
        };
        for (const level of [shared, perExample]) {
          const before = liveTensors();
          const got = await pd.predictAsync(x, level, cond);
          expect(liveTensors()).toBe(before + 1); // the result only: nothing leaks
          const want = model.predict(x, level, cond);
          expect(await relDiff(got, want)).toBeLessThanOrEqual(FORWARD_TOL);
          tf.dispose([got, want]);
        }
        tf.dispose([x, perExample.alpha as tf.Tensor, perExample.sigma as tf.Tensor]);
        if (cond) cond.labels.dispose();
      }, 30_000);
    }

    it('a dpmpp_2m run (10 steps, fixed seed) through it matches the synchronous model', async () => {
      const batch = 6;
      const cond = c.classes > 0 ? { labels: labels(batch, c.classes) } : undefined;
      const options = {
        sampler: 'dpmpp_2m' as const,
        steps: 10,
        batch,
        seed: 21,
        ...(cond ? { cond } : {}),
      };
      const got = await assertNoLeaks(() => sample(pd, options), 'parallel sample');
      const want = await sample(model, options);
      expect(await relDiff(got, want)).toBeLessThanOrEqual(SAMPLE_TOL);
      tf.dispose([got, want]);
      if (cond) cond.labels.dispose();
    }, 30_000);

    if (c.classes > 0) {
      it('classifier-free guidance (@diffuse/guidance) runs on it unchanged', async () => {
        const batch = 4;
        const cond = { labels: labels(batch, c.classes - 1) }; // real classes only
        const options = { sampler: 'euler' as const, steps: 4, batch, seed: 5, cond };
        const guide = { guidanceScale: 3 };
        const got = await sample(classifierFreeGuidance(pd, guide), options);
        const want = await sample(classifierFreeGuidance(model, guide), options);
        expect(await relDiff(got, want)).toBeLessThanOrEqual(SAMPLE_TOL);
        tf.dispose([got, want, cond.labels]);
      }, 30_000);
    }
  });
}

describe('ParallelDenoiser: weights, errors and lifecycle', () => {
  const make = (seed: number) => new Mlp(mlpConfig({ dim: 2, width: 16, depth: 1 }), { seed });
  const level = { alpha: 0.8, sigma: 0.6 };
  let model: Mlp;
  let pd: ParallelDenoiser; // 3 workers: batches of 1 and 2 leave some idle
  beforeAll(async () => {
    model = make(1);
    pd = await ParallelDenoiser.create(model, { workers: 3 });
  }, 30_000);
  afterAll(async () => {
    await pd?.dispose();
    model?.dispose();
  });

  it('setWeights loads other weights (an EMA shadow, say) into every worker', async () => {
    const other = make(2);
    const x = Random.seed(4).normal([5, 2]);
    const before = await pd.predictAsync(x, level);
    await pd.setWeights(other.params);
    const after = await pd.predictAsync(x, level);
    const wantBefore = model.predict(x, level);
    const wantAfter = other.predict(x, level);
    expect(await relDiff(before, wantBefore)).toBeLessThanOrEqual(FORWARD_TOL);
    expect(await relDiff(after, wantAfter)).toBeLessThanOrEqual(FORWARD_TOL);
    expect(await relDiff(after, wantBefore)).toBeGreaterThan(1e-2); // the weights did change
    await pd.setWeights(); // back to the model's own
    const again = await pd.predictAsync(x, level);
    expect(await relDiff(again, wantBefore)).toBeLessThanOrEqual(FORWARD_TOL);
    await expect(pd.setWeights(other.params.slice(1))).rejects.toThrow(/not the model's/);
    tf.dispose([x, before, after, again, wantBefore, wantAfter]);
    other.dispose();
  }, 30_000);

  it('calls made without awaiting are answered in order; batches of 0 to 2 rows on 3 workers', async () => {
    const xs = [3, 1, 2, 4].map((n, i) => Random.seed(i).normal([n, 2]));
    const levels = [0.3, 0.5, 0.7, 0.9].map((a) => ({ alpha: a, sigma: Math.sqrt(1 - a * a) }));
    const got = await Promise.all(xs.map((x, i) => pd.predictAsync(x, levels[i]!)));
    for (let i = 0; i < xs.length; i++) {
      const want = model.predict(xs[i]!, levels[i]!);
      expect(await relDiff(got[i]!, want)).toBeLessThanOrEqual(FORWARD_TOL);
      want.dispose();
    }
    const empty = tf.zeros([0, 2]);
    const none = await pd.predictAsync(empty, level);
    expect(none.shape).toEqual([0, 2]);
    tf.dispose([...xs, ...got, empty, none]);
  }, 30_000);

  it('a worker error is a TrainError naming the worker and the error; the pool goes on', async () => {
    const x = tf.zeros([4, 2]);
    const y = tf.zeros([4, 3]);
    const before = liveTensors();
    // labels for an unconditional network: the replicas refuse them, in the workers
    const labels = tf.tensor1d([0, 1, 0, 1], 'int32');
    await expect(pd.predictAsync(x, level, { labels })).rejects.toThrow(
      /denoiser worker 0 failed: ModelError.*unconditional/,
    );
    await expect(pd.predictAsync(x, level, { labels })).rejects.toBeInstanceOf(TrainError);
    // checked on the main thread before anything is shipped
    await expect(pd.predictAsync(y, level)).rejects.toThrow(/expects x of shape \[batch, 2\]/);
    const bad = { alpha: tf.ones([2, 2]), sigma: 0.6 };
    await expect(pd.predictAsync(x, bad)).rejects.toThrow(/level.alpha has shape \[2, 2\]/);
    expect(liveTensors()).toBe(before + 2);
    const ok = await pd.predictAsync(x, level);
    expect(ok.shape).toEqual([4, 2]);
    tf.dispose([x, y, labels, ok, bad.alpha]);
  }, 30_000);

  it('a worker that crashes or exits mid-call rejects the call with a TrainError (no hang)', async () => {
    // a stand-in worker: answers init, then dies on the first forward request
    const script = (die: string) =>
      new URL(
        `data:text/javascript,${encodeURIComponent(
          `import { parentPort } from 'node:worker_threads';
           parentPort.on('message', (m) => {
             if (m.type === 'init') parentPort.postMessage({ type: 'ready', backend: 'wasm' });
             else { ${die} }
           });`,
        )}`,
      );
    const x = tf.zeros([4, 2]);
    const exits = await ParallelDenoiser.create(model, {
      workers: 2,
      workerUrl: script('process.exit(3);'),
    });
    await expect(exits.predictAsync(x, level)).rejects.toThrow(
      /denoiser worker 0 exited unexpectedly with code 3/,
    );
    // the worker is gone: later calls fail at once, with the same error
    await expect(exits.predictAsync(x, level)).rejects.toThrow(/exited unexpectedly/);
    await exits.dispose();
    const throws = await ParallelDenoiser.create(model, {
      workers: 1,
      workerUrl: script('setTimeout(() => { throw new Error("boom"); });'),
    });
    await expect(throws.predictAsync(x, level)).rejects.toThrow(
      /denoiser worker 0 crashed: Error: boom/,
    );
    await throws.dispose();
    x.dispose();
  }, 30_000);

  it('refuses what it cannot run, with TrainErrors', async () => {
    await expect(ParallelDenoiser.create(model, { workers: 0 })).rejects.toThrow(TrainError);
    await expect(
      ParallelDenoiser.create(model, { backend: 'webgl' as unknown as 'wasm' }),
    ).rejects.toThrow(/'wasm' or 'cpu'/);
    const notANetwork = { prediction: 'epsilon', predict: () => tf.scalar(0) };
    await expect(
      ParallelDenoiser.create(notANetwork as unknown as NetworkDenoiser),
    ).rejects.toThrow(/ParallelDenoiser needs an Mlp or UNet/);
    const bad = new URL(`data:text/javascript,${encodeURIComponent('throw new Error("boom")')}`);
    await expect(ParallelDenoiser.create(model, { workers: 1, workerUrl: bad })).rejects.toThrow(
      /denoiser worker 0 crashed: Error: boom/,
    );
  }, 30_000);

  it('dispose and abort terminate the workers; calls in flight and later fail with TrainError', async () => {
    const x = tf.zeros([4, 2]);
    const pd1 = await ParallelDenoiser.create(model, { workers: 2 });
    const y = await pd1.predictAsync(x, level);
    expect(pd1.lastTimings!.workersMs).toBeGreaterThan(0);
    const inFlight = pd1.predictAsync(x, level);
    const queued = pd1.predictAsync(x, level);
    expect(pd1.disposed).toBe(false);
    await pd1.dispose(); // resolves once every worker has exited
    expect(pd1.disposed).toBe(true);
    await expect(inFlight).rejects.toThrow(TrainError);
    await expect(queued).rejects.toThrow(TrainError);
    await expect(pd1.predictAsync(x, level)).rejects.toThrow(/disposed/);
    await pd1.dispose(); // idempotent

    const controller = new AbortController();
    const pd2 = await ParallelDenoiser.create(model, { workers: 1, signal: controller.signal });
    const pending = pd2.predictAsync(x, level);
    controller.abort();
    expect(pd2.disposed).toBe(true);
    await expect(pending).rejects.toThrow(TrainError);
    await expect(pd2.predictAsync(x, level)).rejects.toThrow(/disposed/);
    tf.dispose([x, y]);
  }, 30_000);
});
