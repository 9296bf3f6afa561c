import { initBackend, liveTensors, type Random } from '@diffuse/backend';
import { type ArrayDataset, ShuffledBatches } from '@diffuse/data';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type BatchSource,
  MemoryCheckpointStore,
  type ParameterAverage,
  TrainError,
  Trainer,
  type TrainProgress,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** A tiny two-layer regression net with explicit variables, re-initialised from `seed`. */
function makeNet(seed: number) {
  const init = (shape: number[], s: number) =>
    tf.variable(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', s), 0.5), true);
  const params = [init([3, 16], seed), init([16], seed + 1), init([16, 1], seed + 2)];
  const forward = (x: tf.Tensor) =>
    tf.matMul(tf.tanh(tf.add(tf.matMul(x, params[0]!), params[1]!)), params[2]!);
  return { params, forward };
}

/** A fixed regression data set: y = sin(x . w) (the label column is unused here). */
function dataset(n: number): ArrayDataset {
  const x = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.3);
    const b = Math.cos(i * 0.7);
    const c = Math.sin(i * 0.11);
    x.set([a, b, c, Math.sin(a + 2 * b - c)], i * 4);
  }
  return { x, labels: new Int32Array(n), count: n, shape: [4], numClasses: 1 };
}

type Batch = { x: tf.Tensor; labels: tf.Tensor1D };

/** A `BatchSource` over a `ShuffledBatches`, whose position is checkpointed. */
function source(ds: ArrayDataset, seed: number): BatchSource<Batch> {
  let it = new ShuffledBatches(ds, { batchSize: 16, seed });
  return {
    next: () => it.next(),
    state: () => it.state(),
    restore: (s) => {
      it = ShuffledBatches.restore(ds, s as ReturnType<ShuffledBatches['state']>);
    },
  };
}

/** A plain EMA test double (the real one lives in @diffuse/models). */
function ema(params: tf.Variable[], decay: number): ParameterAverage & { shadow: tf.Variable[] } {
  const shadow = params.map((p) => tf.variable(tf.clone(p), false));
  return {
    shadow,
    update: () =>
      tf.tidy(() =>
        shadow.forEach((s, i) => {
          s.assign(tf.add(tf.mul(s, decay), tf.mul(params[i]!, 1 - decay)));
        }),
      ),
  };
}

function setup(opts: { netSeed: number; store?: MemoryCheckpointStore; every?: number }) {
  const ds = dataset(200);
  const net = makeNet(opts.netSeed);
  const avg = ema(net.params, 0.9);
  const trainer = new Trainer<Batch>({
    params: net.params,
    data: source(ds, 5),
    // the loss draws input noise from the trainer's stream, so the RNG state matters for resuming
    loss: (batch, rng: Random) =>
      tf.tidy(() => {
        const [x, y] = tf.split(batch.x, [3, 1], 1);
        const noisy = tf.add(x!, tf.mul(rng.normal(x!.shape), 0.1));
        return tf.mean(tf.square(tf.sub(net.forward(noisy), y!))) as tf.Scalar;
      }),
    seed: 11,
    optimizer: { learningRate: 0.02, warmupSteps: 5, clipNorm: 1 },
    ema: avg,
    ...(opts.store !== undefined
      ? { checkpoint: { store: opts.store, every: opts.every ?? 10 } }
      : {}),
  });
  const dispose = () => {
    trainer.dispose();
    tf.dispose([...net.params, ...avg.shadow]);
  };
  return { trainer, net, avg, dispose };
}

describe('Trainer', () => {
  it('is seeded: two runs give the same losses; the loss goes down; no tensors leak', async () => {
    const a = setup({ netSeed: 1 });
    const before = liveTensors();
    await a.trainer.run(60);
    expect(liveTensors()).toBe(before);
    const b = setup({ netSeed: 1 });
    await b.trainer.run(60);
    expect(b.trainer.losses).toEqual(a.trainer.losses);
    const first = a.trainer.losses.slice(0, 10).reduce((x, y) => x + y) / 10;
    const last = a.trainer.losses.slice(-10).reduce((x, y) => x + y) / 10;
    expect(last).toBeLessThan(0.5 * first);
    a.dispose();
    b.dispose();
  });

  it('resuming from a checkpoint continues exactly: same losses, parameters, moments and EMA as an uninterrupted run', async () => {
    const straight = setup({ netSeed: 1 });
    await straight.trainer.run(45);

    const store = new MemoryCheckpointStore();
    const first = setup({ netSeed: 1, store, every: 10 });
    await first.trainer.run(25); // checkpoints at 10, 20 and (end of run) 25
    first.dispose();

    // a new process: differently initialised parameters, everything comes from the checkpoint
    const resumed = setup({ netSeed: 99, store, every: 10 });
    expect(await resumed.trainer.restore()).toBe(25);
    expect(resumed.trainer.step).toBe(25);
    await resumed.trainer.run(45);

    expect(resumed.trainer.losses).toEqual(straight.trainer.losses);
    for (let i = 0; i < 3; i++) {
      expect(Array.from(await resumed.net.params[i]!.data())).toEqual(
        Array.from(await straight.net.params[i]!.data()),
      );
      expect(Array.from(await resumed.avg.shadow[i]!.data())).toEqual(
        Array.from(await straight.avg.shadow[i]!.data()),
      );
    }
    const m1 = resumed.trainer.optimizer.stateTensors();
    const m2 = straight.trainer.optimizer.stateTensors();
    for (const k of Object.keys(m1))
      expect(Array.from(await m1[k]!.data())).toEqual(Array.from(await m2[k]!.data()));
    straight.dispose();
    resumed.dispose();
  });

  it('reports progress, evaluates periodically and checkpoints on schedule', async () => {
    const store = new MemoryCheckpointStore();
    const events: TrainProgress[] = [];
    const ds = dataset(64);
    const net = makeNet(3);
    const trainer = new Trainer<Batch>({
      params: net.params,
      data: source(ds, 1),
      loss: (b) =>
        tf.tidy(() => tf.mean(tf.square(net.forward(tf.slice(b.x, [0, 0], [-1, 3])))) as tf.Scalar),
      seed: 0,
      logEvery: 5,
      evaluate: { every: 10, fn: (t) => ({ step: t.step }) },
      checkpoint: { store, every: 8 },
      onProgress: (p) => events.push(p),
    });
    const summary = await trainer.run(20);
    expect(summary.step).toBe(20);
    expect(events.filter((e) => e.kind === 'step').map((e) => e.step)).toEqual([5, 10, 15, 20]);
    expect(events.filter((e) => e.kind === 'eval').map((e) => e.metrics?.step)).toEqual([10, 20]);
    expect(events.filter((e) => e.kind === 'checkpoint').map((e) => e.step)).toEqual([8, 16, 20]);
    expect(trainer.evaluations.map((e) => e.step)).toEqual([10, 20]);
    const last = events.at(-1)!;
    expect(last.learningRate).toBe(1e-3);
    expect(Number.isFinite(last.gradNorm)).toBe(true);
    // only the newest weights file is kept
    expect((await store.list()).sort()).toEqual([
      'checkpoint.json',
      'weights-000000020.safetensors',
    ]);
    trainer.dispose();
    tf.dispose(net.params);
  });

  it('stops with a TrainError naming the step when the loss is not finite', async () => {
    const net = makeNet(4);
    let calls = 0;
    const trainer = new Trainer({
      params: net.params,
      data: () => ({ x: tf.ones([2, 3]) }),
      loss: (b) =>
        tf.tidy(() => {
          calls++;
          const l = tf.mean(net.forward(b.x));
          return (calls === 3 ? tf.div(l, 0) : l) as tf.Scalar;
        }),
      seed: 0,
    });
    const before = liveTensors();
    await expect(trainer.run(10)).rejects.toThrow(/loss is (Infinity|-Infinity|NaN) at step 3/);
    expect(liveTensors()).toBe(before);
    expect(trainer.step).toBe(2);
    await expect(trainer.run(1.5)).rejects.toThrow(/non-negative integer/);
    expect(
      () => new Trainer({ params: [], data: () => ({}), loss: () => tf.scalar(0), seed: 0 }),
    ).toThrow(/at least one/);
    await expect(trainer.save()).rejects.toThrow(TrainError);
    trainer.dispose();
    tf.dispose(net.params);
  });

  it('trains the same on cpu as on wasm (same seeded losses within float32 rounding)', async () => {
    const run = async (backend: 'cpu' | 'wasm') => {
      await initBackend(backend);
      const s = setup({ netSeed: 2 });
      await s.trainer.run(20);
      const losses = [...s.trainer.losses];
      s.dispose();
      return losses;
    };
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    cpu.forEach((l, i) => {
      expect(Math.abs(l - wasm[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(l)));
    });
  });

  it('refuses a checkpoint made for other parameters', async () => {
    const store = new MemoryCheckpointStore();
    const a = setup({ netSeed: 1, store });
    await a.trainer.run(10);
    const other = tf.variable(tf.zeros([2]));
    const b = new Trainer({
      params: [other],
      data: () => ({}),
      loss: () => tf.sum(other) as tf.Scalar,
      seed: 0,
      checkpoint: { store, every: 10 },
    });
    await expect(b.restore()).rejects.toThrow(/3 parameters but this trainer has 1/);
    a.dispose();
    b.dispose();
    other.dispose();
  });
});
