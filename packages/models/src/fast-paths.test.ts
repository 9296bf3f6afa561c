/**
 * The networks' fast paths (issue 9, point 3) change no numbers:
 * - GroupNorm + SiLU as one fused kernel (`groupNorm` of @diffuse/backend) gives the outputs and
 *   parameter gradients of the composed tfjs ops (the path webgl/webgpu take), on wasm and cpu;
 * - a shared noise level runs the noise-embedding MLP on one row, with the outputs of per-example
 *   levels that happen to be equal;
 * - a forward pass reads nothing back from the device (the mixture oracle reads each labels tensor
 *   once, to validate it, not on every sampling step).
 * Tolerance: 1e-4 relative to the largest entry of each compared tensor, plus 1e-7 absolute (float32
 * sums in different orders; the fused kernel accumulates in float64).
 */
import { GROUP_NORM, initBackend, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  classifierConfig,
  createModel,
  GaussianMixture,
  type Mlp,
  mlpConfig,
  type NoiseConditionalClassifier,
  type UNet,
  unetConfig,
} from './index.js';

/** Runs `fn` with the fused GroupNorm kernel unregistered on `backend` (the composed-ops path). */
function composed<T>(backend: string, fn: () => T): T {
  const config = tf.getKernel(GROUP_NORM, backend);
  if (config === undefined) throw new Error(`no ${GROUP_NORM} kernel on ${backend}`);
  tf.unregisterKernel(GROUP_NORM, backend);
  try {
    return fn();
  } finally {
    tf.registerKernel(config);
  }
}

/** Every GroupNorm's gamma and beta away from 1 and 0, so the affine part is exercised. */
function perturbNorms(net: { namedParams(): [string, tf.Variable][] }, seed: number): void {
  const rng = Random.seed(seed);
  for (const [name, v] of net.namedParams()) {
    if (name.endsWith('.gamma'))
      v.assign(tf.tidy(() => tf.add(1, tf.mul(0.3, rng.normal(v.shape)))));
    if (name.endsWith('.beta')) v.assign(tf.tidy(() => tf.mul(0.2, rng.normal(v.shape))));
  }
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  let err = 0;
  for (let i = 0; i < actual.length; i++) err = Math.max(err, Math.abs(actual[i]! - expected[i]!));
  // plus 1e-7 absolute: some gradients are zero in exact arithmetic (the attention key bias).
  expect(err, what).toBeLessThanOrEqual(1e-4 * maxAbs(expected) + 1e-7);
}

/** The output at a per-example level and the gradient of sum(w * output) in every parameter. */
function outputsAndGrads(net: UNet | NoiseConditionalClassifier, batch: number): Float32Array[] {
  const rng = Random.seed(9);
  const shape = 'imageShape' in net.config ? net.config.imageShape : net.config.inputShape;
  const x = rng.normal([batch, ...shape]);
  const alpha = tf.linspace(0.95, 0.2, batch);
  const sigma = tf.sqrt(tf.sub(1, tf.square(alpha)));
  const labels = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 4),
    'int32',
  );
  const f = () =>
    'logits' in net
      ? net.logits(x, { alpha, sigma })
      : net.predict(x, { alpha, sigma }, { labels });
  const y = f();
  const w = rng.normal(y.shape);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(w, f())), net.params);
  const out = [
    y.dataSync() as Float32Array,
    ...net.params.map((p) => grads[p.name]!.dataSync() as Float32Array),
  ];
  tf.dispose([x, alpha, sigma, labels, y, w, value, ...Object.values(grads)]);
  return out;
}

const unet = unetConfig({
  imageShape: [8, 6, 2],
  channels: 6,
  channelMults: [1, 2],
  numResBlocks: 1,
  attentionResolutions: [4],
  groups: 3,
  embedDim: 8,
  numClasses: 3,
});

afterEach(() => {
  expect(tf.getKernel(GROUP_NORM, 'wasm')).toBeDefined();
});

describe('fused GroupNorm + SiLU in the networks', () => {
  it.each([1, 2])(
    'U-Net (odd sizes, 3 groups, attention, classes) batch %i: outputs and gradients equal the composed ops on wasm and cpu',
    async (batch) => {
      await initBackend('wasm');
      const net = createModel(unet, { seed: 2 }) as UNet;
      perturbNorms(net, 3);
      const fused = outputsAndGrads(net, batch);
      const reference = composed('wasm', () => outputsAndGrads(net, batch));
      await initBackend('cpu');
      const cpu = outputsAndGrads(net, batch);
      const names = ['output', ...net.namedParams().map(([n]) => n)];
      fused.forEach((a, i) => {
        expectClose(a, reference[i]!, `wasm ${names[i]}`);
        expectClose(cpu[i]!, reference[i]!, `cpu ${names[i]}`);
      });
      net.dispose();
      await initBackend('wasm');
    },
  );

  it('conv classifier: logits and gradients equal the composed ops', async () => {
    await initBackend('wasm');
    const net = createModel(
      classifierConfig({
        inputShape: [8, 8, 3],
        numClasses: 4,
        channels: 8,
        groups: 4,
        embedDim: 8,
      }),
      { seed: 4 },
    ) as NoiseConditionalClassifier;
    perturbNorms(net, 5);
    const fused = outputsAndGrads(net, 2);
    const reference = composed('wasm', () => outputsAndGrads(net, 2));
    fused.forEach((a, i) => {
      expectClose(a, reference[i]!, `classifier ${i}`);
    });
    net.dispose();
  });
});

describe('shared noise level', () => {
  it('runs the noise MLP on one row and equals equal per-example levels (U-Net and MLP)', async () => {
    await initBackend('wasm');
    const nets = [
      createModel(unet, { seed: 6 }) as UNet,
      createModel(mlpConfig({ dim: 3, width: 16, depth: 2, embedDim: 8 }), { seed: 7 }) as Mlp,
    ];
    for (const net of nets) {
      const batch = 5;
      const x = Random.seed(1).normal([batch, ...net.shape]);
      const cond = net.numClasses ? { labels: tf.tensor1d([0, 1, 2, 3, 0], 'int32') } : undefined;
      const embedDim = net.config.embedDim;
      // Rows entering the first noise-embedding layer (a [rows, embedDim] x [embedDim, embedDim] matMul).
      const rows: number[] = [];
      const engine = tf.engine();
      const original = engine.runKernel.bind(engine);
      engine.runKernel = ((name: string, inputs: Record<string, tf.Tensor>, attrs: never) => {
        const { a, b } = inputs;
        if (name.includes('MatMul') && b?.shape.join() === `${embedDim},${embedDim}`)
          rows.push(a!.shape[0]!);
        return original(name, inputs, attrs);
      }) as typeof engine.runKernel;
      let shared: tf.Tensor;
      try {
        shared = net.predict(x, { alpha: 0.6, sigma: 0.8 }, cond);
      } finally {
        engine.runKernel = original;
      }
      expect(rows).toEqual([1, 1]); // fc1 and fc2 on one row
      const perExample = net.predict(
        x,
        { alpha: tf.fill([batch], 0.6), sigma: tf.fill([batch], 0.8) },
        cond,
      );
      expectClose(shared.dataSync(), perExample.dataSync(), `${net.config.kind} shared level`);
      // and a one-element tensor level is shared too
      const scalarLevel = net.predict(x, { alpha: tf.scalar(0.6), sigma: tf.scalar(0.8) }, cond);
      expectClose(
        scalarLevel.dataSync(),
        perExample.dataSync(),
        `${net.config.kind} scalar tensor`,
      );
      tf.dispose([x, shared, perExample, scalarLevel]);
      if (cond) cond.labels.dispose();
      net.dispose();
    }
  });

  it('apply accepts one shared noise value or one per example, and rejects other sizes', async () => {
    await initBackend('wasm');
    const net = createModel(mlpConfig({ dim: 2, width: 8, depth: 1, embedDim: 4 }), {
      seed: 1,
    }) as Mlp;
    const x = Random.seed(2).normal([3, 2]);
    const a = net.apply(x, tf.tensor1d([1.5]));
    const b = net.apply(x, tf.tensor1d([1.5, 1.5, 1.5]));
    expectClose(a.dataSync(), b.dataSync(), 'apply');
    expect(() => net.apply(x, tf.tensor1d([1, 2]))).toThrow(
      /one value per example \(3\) or one shared value, got 2/,
    );
    tf.dispose([x, a, b]);
    net.dispose();
  });
});

/** Counts readbacks (`read`, `readSync`) from the active backend while `fn` runs. */
function countReads<T>(fn: () => T): { value: T; reads: number } {
  const be = tf.backend() as unknown as {
    readSync: (...a: unknown[]) => unknown;
    read: (...a: unknown[]) => unknown;
  };
  const { readSync, read } = be;
  let reads = 0;
  be.readSync = (...a) => {
    reads++;
    return readSync.apply(be, a);
  };
  be.read = (...a) => {
    reads++;
    return read.apply(be, a);
  };
  try {
    return { value: fn(), reads };
  } finally {
    be.readSync = readSync;
    be.read = read;
  }
}

describe('no readbacks', () => {
  it('the mixture oracle reads a labels tensor once, however many steps use it', async () => {
    await initBackend('wasm');
    const gm = new GaussianMixture({
      weights: [0.5, 0.5],
      means: [
        [-1, 0],
        [1, 0],
      ],
      covs: [
        [
          [0.2, 0],
          [0, 0.2],
        ],
        [
          [0.2, 0],
          [0, 0.2],
        ],
      ],
      labels: [0, 1],
    });
    const denoiser = gm.denoiser('epsilon');
    const x = tf.tensor2d([0.1, 0.2, -0.3, 0.4, 0.5, -0.6], [3, 2]);
    const labels = tf.tensor1d([0, 1, 2], 'int32');
    const { value, reads } = countReads(() =>
      [0.9, 0.7, 0.5, 0.3].map((alpha) =>
        denoiser.predict(x, { alpha, sigma: Math.sqrt(1 - alpha * alpha) }, { labels }),
      ),
    );
    expect(reads).toBe(1);
    // the same values in a fresh tensor give the same prediction (the cache changes no numbers)
    const fresh = denoiser.predict(
      x,
      { alpha: 0.3, sigma: Math.sqrt(1 - 0.09) },
      { labels: tf.tensor1d([0, 1, 2], 'int32') },
    );
    expectClose(value[3]!.dataSync(), fresh.dataSync(), 'oracle');
    // an out-of-range label is still rejected
    expect(() =>
      denoiser.predict(x, { alpha: 0.5, sigma: 0.8 }, { labels: tf.tensor1d([0, 3, 1], 'int32') }),
    ).toThrow(/out of range/);
    tf.dispose([x, labels, fresh, ...value]);
  });

  it('U-Net, MLP and classifier forward passes read nothing back from the device', async () => {
    await initBackend('wasm');
    const u = createModel(unet, { seed: 1 }) as UNet;
    const m = createModel(mlpConfig({ dim: 2, numClasses: 3 }), { seed: 1 }) as Mlp;
    const c = createModel(classifierConfig({ inputShape: [8, 8, 1], numClasses: 3 }), {
      seed: 1,
    }) as NoiseConditionalClassifier;
    const labels = tf.tensor1d([0, 3], 'int32');
    const { value: outs, reads } = countReads(() => [
      u.predict(tf.zeros([2, 8, 6, 2]), { alpha: 0.6, sigma: 0.8 }, { labels }),
      m.predict(
        tf.zeros([2, 2]),
        { alpha: tf.tensor1d([0.6, 0.8]), sigma: tf.tensor1d([0.8, 0.6]) },
        { labels },
      ),
      c.logits(tf.zeros([2, 8, 8, 1]), { alpha: 0.6, sigma: 0.8 }),
    ]);
    expect(reads).toBe(0);
    tf.dispose(outs);
    for (const n of [u, m, c]) n.dispose();
    labels.dispose();
  });
});
