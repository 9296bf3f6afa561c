/**
 * ONNX export and ONNX Runtime inference against the tfjs models they come from.
 *
 * Tolerance: 1e-4 of the output's largest magnitude. Both sides compute in float32 but sum in
 * different orders (XNNPACK vs MLAS kernels, fused vs unfused normalisation); the observed
 * differences are ~1e-6 relative.
 */

import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import {
  classifierConfig,
  createModel,
  type Mlp,
  mlpConfig,
  type NoiseConditionalClassifier,
  type UNet,
  unetConfig,
} from '@diffuse/models';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomize } from '../test/fixtures.js';
import { exportOnnx, OnnxError, onnxDenoiser, toOnnx, traceKernels } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

async function expectClose(a: tf.Tensor, b: tf.Tensor): Promise<void> {
  expect(b.shape).toEqual(a.shape);
  const av = await a.data();
  const bv = await b.data();
  let scale = 0;
  let err = 0;
  for (let i = 0; i < av.length; i++) {
    scale = Math.max(scale, Math.abs(av[i]!));
    err = Math.max(err, Math.abs(av[i]! - bv[i]!));
  }
  expect(scale).toBeGreaterThan(1e-3);
  expect(err).toBeLessThanOrEqual(1e-4 * scale);
}

describe('traceKernels', () => {
  it('records the kernels that depend on the inputs and folds the rest into constants', () => {
    const w = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const x = tf.ones([3, 2]);
    const g = traceKernels((x) => tf.tanh(tf.add(tf.matMul(x!, w), tf.exp(tf.scalar(1)))), [x]);
    expect(g.nodes.map((n) => n.kernel)).toEqual(['BatchMatMul', 'Add', 'Tanh']);
    // w and exp(1) (folded) are the constants.
    const values = g.constants.map((c) => Array.from(c.values));
    expect(values).toContainEqual([1, 2, 3, 4]);
    expect(values.some((v) => v.length === 1 && Math.abs(v[0]! - Math.E) < 1e-6)).toBe(true);
    expect(g.output.shape).toEqual([3, 2]);
    tf.dispose([w, x]);
  });

  it('restores the engine even when the traced function throws', () => {
    const x = tf.ones([2]);
    expect(() =>
      traceKernels(() => {
        throw new Error('boom');
      }, [x]),
    ).toThrow('boom');
    const y = tf.add(x, 1); // would be recorded by a leftover wrapper; must just work
    expect(y.shape).toEqual([2]);
    tf.dispose([x, y]);
  });

  it('a kernel without an ONNX translation is a typed error naming it', () => {
    const x = tf.ones([4]);
    const g = traceKernels((x) => tf.cumsum(x!), [x]);
    expect(() => toOnnx(g, { inputNames: ['x'], outputName: 'y' })).toThrow(OnnxError);
    expect(() => toOnnx(g, { inputNames: ['x'], outputName: 'y' })).toThrow(/'Cumsum'/);
    x.dispose();
  });
});

describe('ONNX Runtime matches the tfjs model', () => {
  const level = { alpha: 0.8, sigma: 0.6 };

  it('conditional MLP: same predictions, including the null class and per-example levels', async () => {
    const net = createModel(mlpConfig({ dim: 3, numClasses: 4, width: 64, depth: 3 }), {
      seed: 1,
    }) as Mlp;
    randomize(net, 2);
    const d = onnxDenoiser(net);
    const rng = Random.seed(3);
    const x = rng.normal([32, 3]);
    const labels = tf.tensor1d(
      Array.from({ length: 32 }, (_, i) => i % 5),
      'int32',
    ); // 4 = null
    await expectClose(net.predict(x, level, { labels }), d.predict(x, level, { labels }));
    await expectClose(net.predict(x, level), d.predict(x, level)); // no labels: null class
    const alpha = tf.fill([32, 1], 0.6);
    const sigma = tf.fill([32, 1], 0.8);
    await expectClose(
      net.predict(x, { alpha, sigma }, { labels }),
      d.predict(x, { alpha, sigma }, { labels }),
    );
    d.dispose();
    net.dispose();
  });

  it('U-Net with attention and class conditioning', async () => {
    const net = createModel(
      unetConfig({
        imageShape: [8, 8, 1],
        channels: 8,
        channelMults: [1, 2],
        attentionResolutions: [4],
        groups: 4,
        embedDim: 16,
        numClasses: 3,
      }),
      { seed: 4 },
    ) as UNet;
    randomize(net, 5);
    const d = onnxDenoiser(net);
    const x = Random.seed(6).normal([4, 8, 8, 1]);
    const labels = tf.tensor1d([0, 1, 2, 3], 'int32');
    await expectClose(net.predict(x, level, { labels }), d.predict(x, level, { labels }));
    d.dispose();
    net.dispose();
  });

  it('EDM-preconditioned network: the same x0 predictions', async () => {
    const net = createModel(
      mlpConfig({
        dim: 2,
        width: 32,
        depth: 2,
        prediction: 'x0',
        preconditioning: { type: 'edm', sigmaData: 0.5 },
      }),
      { seed: 7 },
    ) as Mlp;
    randomize(net, 8);
    const d = onnxDenoiser(net);
    expect(d.prediction).toBe('x0');
    const x = Random.seed(9).normal([16, 2]);
    await expectClose(net.predict(x, level), d.predict(x, level));
    d.dispose();
    net.dispose();
  });

  it('classifier logits export and run', async () => {
    const clf = createModel(classifierConfig({ inputShape: [2], numClasses: 3, width: 32 }), {
      seed: 10,
    }) as NoiseConditionalClassifier;
    randomize(clf, 11);
    const bytes = exportOnnx(clf, { batchSize: 8 });
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(bytes);
    const xv = Random.seed(12).normalArray(16);
    const out = await session.run({
      x: new ort.Tensor('float32', xv, [8, 2]),
      alpha: new ort.Tensor('float32', new Float32Array(8).fill(level.alpha), [8]),
      sigma: new ort.Tensor('float32', new Float32Array(8).fill(level.sigma), [8]),
    });
    const ref = clf.logits(tf.tensor2d(xv, [8, 2]), level);
    await expectClose(ref, tf.tensor(out.logits!.data as Float32Array, [8, 3]));
    clf.dispose();
  });

  it('a whole sampler run on ONNX Runtime matches the run on tfjs, without leaks', async () => {
    const net = createModel(mlpConfig({ dim: 2, width: 32, depth: 2 }), { seed: 13 }) as Mlp;
    randomize(net, 14);
    const d = onnxDenoiser(net);
    const opts = { sampler: 'dpmpp_2m', steps: 8, shape: [64, 2], seed: 15 } as const;
    const a = await sample(net, opts);
    const b = await assertNoLeaks(() => sample(d, opts), 'onnx sampling');
    await expectClose(a, b);
    d.dispose();
    net.dispose();
  });
});

describe('the exported file', () => {
  it('is a standard ModelProto: opset 13, named inputs and output, config in the doc string', () => {
    const net = createModel(mlpConfig({ dim: 2, numClasses: 2, width: 16, depth: 1 })) as Mlp;
    const bytes = exportOnnx(net, { batchSize: 5 });
    const model = onnxProto.onnx.ModelProto.decode(bytes);
    const graph = model.graph as onnxProto.onnx.GraphProto;
    expect(Number(model.opsetImport[0]!.version)).toBe(13);
    expect(graph.input.map((i) => i.name)).toEqual(['x', 'noise', 'labels']);
    expect(graph.output.map((o) => o.name)).toEqual(['y']);
    const dims = graph.input[0]!.type!.tensorType!.shape!.dim!;
    expect(dims.map((d) => Number(d.dimValue))).toEqual([5, 2]);
    expect(JSON.parse(model.docString)).toMatchObject({ kind: 'mlp', numClasses: 2 });
    // every initializer is read by some node
    const read = new Set(graph.node.flatMap((n) => n.input));
    for (const init of graph.initializer) expect(read.has(init.name)).toBe(true);
    net.dispose();
  });
});
