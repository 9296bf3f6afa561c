/**
 * The asynchronous ONNX Runtime denoiser (`onnxDenoiserAsync`, the same wrapper as
 * `@diffuse/onnx/web`'s `onnxDenoiserWeb`) against the tfjs model, on onnxruntime-node's main thread.
 * Tolerance: 1e-4 of the output's largest magnitude (see onnx.test.ts).
 */
import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import {
  classifierConfig,
  createModel,
  type Denoiser,
  type Mlp,
  mlpConfig,
  type NoiseConditionalClassifier,
} from '@diffuse/models';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomize } from '../test/fixtures.js';
import { exportOnnx, OnnxError, type OrtModule, onnxDenoiserAsync, readOnnxInfo } from './index.js';
import { onnxDenoiserWeb } from './web.js';

beforeAll(async () => {
  await initBackend('wasm');
});

async function expectClose(a: tf.Tensor, b: tf.Tensor, dispose = true): Promise<number> {
  expect(b.shape).toEqual(a.shape);
  const av = await a.data();
  const bv = await b.data();
  let scale = 0;
  let err = 0;
  for (let i = 0; i < av.length; i++) {
    scale = Math.max(scale, Math.abs(av[i]!));
    err = Math.max(err, Math.abs(av[i]! - bv[i]!));
  }
  if (dispose) tf.dispose([a, b]);
  expect(scale).toBeGreaterThan(1e-3);
  expect(err).toBeLessThanOrEqual(1e-4 * scale);
  return err / scale;
}

const level = { alpha: 0.8, sigma: 0.6 };

describe('onnxDenoiserAsync', () => {
  it('conditional MLP: the tfjs predictions, with labels, the null class and per-example levels', async () => {
    const net = createModel(mlpConfig({ dim: 3, numClasses: 4, width: 64, depth: 3 }), {
      seed: 1,
    }) as Mlp;
    randomize(net, 2);
    const d = await onnxDenoiserAsync(net);
    expect(d.prediction).toBe('epsilon');
    expect(d.numClasses).toBe(4);
    const x = Random.seed(3).normal([32, 3]);
    const labels = tf.tensor1d(
      Array.from({ length: 32 }, (_, i) => i % 5),
      'int32',
    );
    await expectClose(
      net.predict(x, level, { labels }),
      await assertNoLeaks(() => d.predictAsync(x, level, { labels }), 'predictAsync'),
    );
    await expectClose(net.predict(x, level), await d.predictAsync(x, level));
    const alpha = tf.fill([32, 1], 0.6);
    const sigma = tf.fill([32, 1], 0.8);
    await expectClose(
      net.predict(x, { alpha, sigma }, { labels }),
      await d.predictAsync(x, { alpha, sigma }, { labels }),
    );
    tf.dispose([x, labels, alpha, sigma]);
    await d.dispose();
    net.dispose();
  });

  it('EDM preconditioning, from the network and from the exported bytes (config in the doc string)', async () => {
    const net = createModel(
      mlpConfig({
        dim: 2,
        width: 32,
        depth: 2,
        prediction: 'x0',
        preconditioning: { type: 'edm', sigmaData: 0.7 },
      }),
      { seed: 7 },
    ) as Mlp;
    randomize(net, 8);
    const x = Random.seed(9).normal([16, 2]);
    const fromNet = await onnxDenoiserAsync(net);
    const fromFile = await onnxDenoiserAsync(exportOnnx(net, { batchSize: 16 }));
    for (const d of [fromNet, fromFile]) {
      expect(d.prediction).toBe('x0');
      await expectClose(net.predict(x, level), await d.predictAsync(x, level));
      await d.dispose();
    }
    expect(fromFile.batchSize).toBe(16);
    expect(fromFile.shape).toEqual([2]);
    x.dispose();
    net.dispose();
  });

  it('a whole dpmpp_2m run from the file (symbolic batch) matches the tfjs run, without leaks', async () => {
    const net = createModel(mlpConfig({ dim: 2, width: 32, depth: 2 }), { seed: 13 }) as Mlp;
    randomize(net, 14);
    const d = await onnxDenoiserAsync(exportOnnx(net).buffer as ArrayBuffer);
    expect(d.batchSize).toBeUndefined();
    const opts = { sampler: 'dpmpp_2m', steps: 8, shape: [64, 2], seed: 15 } as const;
    const a = await sample(net, opts);
    const b = await assertNoLeaks(() => sample(d, opts), 'async onnx sampling');
    await expectClose(a, b);
    await d.dispose();
    net.dispose();
  });

  it('typed errors: wrong batch, classifier file, foreign file without a prediction, sync predict', async () => {
    const net = createModel(mlpConfig({ dim: 2, width: 16, depth: 1 }), { seed: 1 }) as Mlp;
    const bytes = exportOnnx(net, { batchSize: 8 });
    const d = await onnxDenoiserAsync(bytes);
    const x = tf.zeros([4, 2]);
    await expect(d.predictAsync(x, level)).rejects.toThrow(
      /exported for batches of 8, got a batch of 4/,
    );
    // Plain-JS callers of synchronous APIs (logLikelihood) get a typed error, not a TypeError.
    expect(() => (d as unknown as Denoiser).predict(x, level)).toThrow(OnnxError);
    expect(() => (d as unknown as Denoiser).predict(x, level)).toThrow(/asynchronous/);
    await d.dispose();

    const clf = createModel(classifierConfig({ inputShape: [2], numClasses: 3, width: 8 }), {
      seed: 2,
    }) as NoiseConditionalClassifier;
    await expect(onnxDenoiserAsync(exportOnnx(clf, { batchSize: 4 }))).rejects.toThrow(
      /classifier/,
    );
    await expect(onnxDenoiserAsync(new Uint8Array([1, 2, 3, 250]))).rejects.toThrow(OnnxError);
    await expect(onnxDenoiserAsync(clf as unknown as Mlp)).rejects.toThrow(/MLP or U-Net/);
    tf.dispose(x);
    clf.dispose();
    net.dispose();
  });

  it('readOnnxInfo reads inputs, batch and config', () => {
    const net = createModel(mlpConfig({ dim: 3, numClasses: 2, width: 16, depth: 1 })) as Mlp;
    const info = readOnnxInfo(exportOnnx(net, { batchSize: 5 }));
    expect(info.inputs).toEqual([
      { name: 'x', dims: [5, 3] },
      { name: 'noise', dims: [5] },
      { name: 'labels', dims: [5] },
    ]);
    expect(info.outputs).toEqual(['y']);
    expect(info.config?.kind).toBe('mlp');
    net.dispose();
  });

  it('onnxDenoiserWeb hands executionProviders to InferenceSession.create (default wasm)', async () => {
    // onnxruntime-node stands in for onnxruntime-web: it records the options and runs on its CPU EP.
    const node = (await import('onnxruntime-node')) as unknown as OrtModule;
    const seen: unknown[] = [];
    const ort: OrtModule = {
      Tensor: node.Tensor,
      InferenceSession: {
        create: (bytes, options) => {
          seen.push(options?.executionProviders);
          return node.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] });
        },
      },
    };
    const net = createModel(mlpConfig({ dim: 2, width: 16, depth: 1 }), { seed: 3 }) as Mlp;
    randomize(net, 4);
    const x = Random.seed(5).normal([3, 2]);
    for (const executionProviders of [undefined, ['webgpu', 'wasm'] as const]) {
      const d = await onnxDenoiserWeb(net, {
        ort,
        ...(executionProviders ? { executionProviders } : {}),
      });
      await expectClose(net.predict(x, level), await d.predictAsync(x, level));
      await d.dispose();
    }
    expect(seen).toEqual([['wasm'], ['webgpu', 'wasm']]);
    await expect(onnxDenoiserWeb(net, { ort, executionProviders: [] })).rejects.toThrow(OnnxError);
    x.dispose();
    net.dispose();
  });
});
