/**
 * The symbolic batch axis: ONE exported file and ONE ONNX Runtime session serve batches of 1, 3, 8
 * and 64, each matching the tfjs forward pass of the network it came from.
 *
 * Tolerance: 1e-4 of the output's largest magnitude, as in onnx.test.ts (float32 on both sides,
 * different summation orders; observed differences are ~1e-6 relative).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, Random } from '@diffuse/backend';
import {
  classifierConfig,
  createModel,
  type Mlp,
  mlpConfig,
  type NoiseConditionalClassifier,
  type UNet,
  unetConfig,
} from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomize } from '../test/fixtures.js';
import {
  BATCH_DIM,
  exportOnnx,
  OnnxError,
  onnxDenoiser,
  onnxDenoiserAsync,
  readOnnxInfo,
  toOnnx,
  traceKernels,
} from './index.js';

type Ort = typeof import('onnxruntime-node');
let ort: Ort;

beforeAll(async () => {
  await initBackend('wasm');
  ort = await import('onnxruntime-node');
});

const BATCHES = [1, 3, 8, 64];

/** A Python with the `onnx` package (e.g. Debian's python3-onnx), for its checker; else undefined. */
const pythonWithOnnx = ['python3', '/usr/bin/python3'].find((py) => {
  try {
    execFileSync(py, ['-c', 'import onnx'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

/** max |a - b| / max |a|, after checking shapes and that a is not ~0. */
function relErr(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]!));
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
  }
  expect(scale).toBeGreaterThan(1e-3);
  return err / scale;
}

/** Axis 0 of every input and output is `dim_param: 'batch'`; the other axes are fixed numbers. */
function expectSymbolicBatch(bytes: Uint8Array): void {
  const graph = onnxProto.onnx.ModelProto.decode(bytes).graph as onnxProto.onnx.GraphProto;
  expect(graph.input.length).toBeGreaterThan(0);
  for (const v of [...graph.input, ...graph.output]) {
    const dims = v.type!.tensorType!.shape!.dim!;
    expect(dims[0]!.dimParam, v.name!).toBe(BATCH_DIM);
    expect(dims[0]!.dimValue ?? null, v.name!).toBeNull();
    for (const d of dims.slice(1)) expect(Number(d.dimValue), v.name!).toBeGreaterThan(0);
  }
}

/**
 * One session of `bytes`, run at every batch size in BATCHES against `reference(batch)`: the feeds
 * (name -> tensor) and the tfjs output for that batch.
 */
async function expectEveryBatch(
  bytes: Uint8Array,
  reference: (batch: number) => { feeds: Record<string, tf.Tensor>; expected: tf.Tensor },
): Promise<number[]> {
  expectSymbolicBatch(bytes);
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  const errors: number[] = [];
  try {
    for (const batch of BATCHES) {
      const { feeds, expected } = reference(batch);
      const ortFeeds: Record<string, InstanceType<Ort['Tensor']>> = {};
      for (const [name, t] of Object.entries(feeds)) {
        ortFeeds[name] =
          t.dtype === 'int32'
            ? new ort.Tensor('int32', (await t.data()) as Int32Array, t.shape)
            : new ort.Tensor('float32', (await t.data()) as Float32Array, t.shape);
      }
      const out = await session.run(ortFeeds);
      const y = out[session.outputNames[0]!]!;
      expect([...y.dims]).toEqual(expected.shape);
      const err = relErr((await expected.data()) as Float32Array, y.data as Float32Array);
      expect(err, `batch ${batch}`).toBeLessThanOrEqual(1e-4);
      errors.push(err);
      tf.dispose([...Object.values(feeds), expected]);
    }
  } finally {
    await session.release();
  }
  return errors;
}

/** Feeds and tfjs output of a denoiser network's raw F(x; noise, labels) at batch `b`. */
function denoiserCase(net: Mlp | UNet, seed: number) {
  return (b: number) => {
    const rng = Random.seed(seed + b);
    const x = rng.normal([b, ...net.shape]);
    const noise = tf.tidy(() => tf.sub(tf.mul(rng.uniform([b]), 10), 5)); // per-example logSNR
    const feeds: Record<string, tf.Tensor> = { x, noise };
    const k = net.numClasses ?? 0;
    if (k > 0)
      feeds.labels = tf.tensor1d(
        Array.from({ length: b }, (_, i) => (i * 7) % (k + 1)),
        'int32',
      );
    const expected = net.apply(x, noise, feeds.labels ? { labels: feeds.labels } : undefined);
    return { feeds, expected };
  };
}

describe('one exported file, every batch size', () => {
  it('MLP', async () => {
    const net = createModel(mlpConfig({ dim: 2, width: 32, depth: 2 }), { seed: 1 }) as Mlp;
    randomize(net, 2);
    await expectEveryBatch(exportOnnx(net), denoiserCase(net, 3));
    net.dispose();
  });

  it('class-conditional MLP (labels batch-symbolic, the null class included)', async () => {
    const net = createModel(mlpConfig({ dim: 3, numClasses: 4, width: 32, depth: 2 }), {
      seed: 4,
    }) as Mlp;
    randomize(net, 5);
    const bytes = exportOnnx(net);
    expect(readOnnxInfo(bytes).inputs).toEqual([
      { name: 'x', dims: [-1, 3] },
      { name: 'noise', dims: [-1] },
      { name: 'labels', dims: [-1] },
    ]);
    await expectEveryBatch(bytes, denoiserCase(net, 6));
    net.dispose();
  });

  it('U-Net with attention, class-conditional', async () => {
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
      { seed: 7 },
    ) as UNet;
    randomize(net, 8);
    const bytes = exportOnnx(net);
    await expectEveryBatch(bytes, denoiserCase(net, 9));
    net.dispose();
  });

  it('classifier logits (alpha, sigma per example)', async () => {
    const clf = createModel(classifierConfig({ inputShape: [2], numClasses: 3, width: 32 }), {
      seed: 10,
    }) as NoiseConditionalClassifier;
    randomize(clf, 11);
    await expectEveryBatch(exportOnnx(clf), (b) => {
      const rng = Random.seed(12 + b);
      const x = rng.normal([b, 2]);
      const alpha = tf.tidy(() => tf.add(tf.mul(rng.uniform([b]), 0.8), 0.1));
      const sigma = tf.tidy(() => tf.sqrt(tf.sub(1, tf.square(alpha))));
      const expected = tf.tidy(() =>
        clf.logits(x, { alpha: tf.reshape(alpha, [b, 1]), sigma: tf.reshape(sigma, [b, 1]) }),
      );
      return { feeds: { x, alpha, sigma }, expected };
    });
    clf.dispose();
  });

  it('a convolutional classifier', async () => {
    const clf = createModel(
      classifierConfig({ inputShape: [8, 8, 1], numClasses: 3, channels: 8, groups: 4 }),
      { seed: 13 },
    ) as NoiseConditionalClassifier;
    randomize(clf, 14);
    await expectEveryBatch(exportOnnx(clf), (b) => {
      const rng = Random.seed(15 + b);
      const x = rng.normal([b, 8, 8, 1]);
      const alpha = tf.fill([b], 0.8);
      const sigma = tf.fill([b], 0.6);
      const expected = clf.logits(x, { alpha: 0.8, sigma: 0.6 });
      return { feeds: { x, alpha, sigma }, expected };
    });
    clf.dispose();
  });

  it.skipIf(pythonWithOnnx === undefined)(
    'the files pass onnx.checker.check_model(full_check=True) (strict shape inference)',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'diffuse-onnx-check-'));
      const mlp = createModel(mlpConfig({ dim: 2, numClasses: 2, width: 16, depth: 2 })) as Mlp;
      const unet = createModel(
        unetConfig({
          imageShape: [8, 8, 1],
          channels: 8,
          channelMults: [1, 2],
          attentionResolutions: [4],
          groups: 4,
          embedDim: 16,
          numClasses: 3,
        }),
      ) as UNet;
      const clf = createModel(
        classifierConfig({ inputShape: [2], numClasses: 3, width: 16 }),
      ) as NoiseConditionalClassifier;
      try {
        const files = [mlp, unet, clf].map((net, i) => {
          const f = join(dir, `${i}.onnx`);
          writeFileSync(f, exportOnnx(net));
          return f;
        });
        // Prints, per file, the inferred axis 0 of the MLP's values: all 'batch'.
        const script = [
          'import sys, onnx',
          'from onnx import shape_inference',
          'for f in sys.argv[1:]:',
          '    m = onnx.load(f)',
          '    onnx.checker.check_model(m, full_check=True)',
          'm = shape_inference.infer_shapes(onnx.load(sys.argv[1]), strict_mode=True)',
          'print(sorted({v.type.tensor_type.shape.dim[0].dim_param for v in m.graph.value_info if len(v.type.tensor_type.shape.dim)}))',
        ].join('\n');
        const out = execFileSync(pythonWithOnnx!, ['-c', script, ...files], { encoding: 'utf8' });
        expect(out.trim()).toBe("['batch']");
      } finally {
        rmSync(dir, { recursive: true, force: true });
        for (const net of [mlp, unet, clf]) net.dispose();
      }
    },
  );

  it('batchSize still fixes the batch when asked', () => {
    const net = createModel(mlpConfig({ dim: 2, width: 16, depth: 1 })) as Mlp;
    expect(readOnnxInfo(exportOnnx(net, { batchSize: 5 })).inputs[0]!.dims).toEqual([5, 2]);
    expect(() => exportOnnx(net, { batchSize: 0 })).toThrow(OnnxError);
    net.dispose();
  });
});

describe('shapes that depend on the batch', () => {
  // b * 2 rows (Reshape to [-1, 1]), a per-example constant (Expand), the first b rows (Slice ends
  // computed from the batch), and the first example repeated b times (Tile reps from the batch).
  const fn = (b: number) => (x: tf.Tensor | undefined) => {
    const scaled = tf.mul(tf.reshape(x!, [b * 2, 1]), tf.fill([b * 2, 1], 3));
    const first = tf.slice(scaled, [0, 0], [b, 1]);
    return tf.add(first, tf.tile(tf.slice(x!, [0, 0], [1, 2]), [b, 1]));
  };
  const trace = (b: number) => {
    const x = tf.zeros([b, 2]);
    const g = traceKernels(fn(b), [x]);
    x.dispose();
    return g;
  };

  it('Reshape, Slice and per-example constants follow the batch', async () => {
    const bytes = toOnnx(trace(3), {
      inputNames: ['x'],
      outputName: 'y',
      batchTwins: [trace(5), trace(4)],
    });
    expectSymbolicBatch(bytes);
    const session = await ort.InferenceSession.create(bytes);
    for (const b of [1, 2, 7]) {
      const xv = Random.seed(b).normalArray(2 * b);
      const x = tf.tensor2d(xv, [b, 2]);
      const expected = fn(b)(x);
      const out = await session.run({ x: new ort.Tensor('float32', xv, [b, 2]) });
      expect([...out.y!.dims]).toEqual(expected.shape);
      expect(relErr((await expected.data()) as Float32Array, out.y!.data as Float32Array)).toBe(0);
      tf.dispose([x, expected]);
    }
    await session.release();
  });

  it('a graph that changes with the batch is a typed error', () => {
    const t = (b: number) => {
      const x = tf.zeros([b, 2]);
      const g = traceKernels((x) => (b === 3 ? tf.exp(x!) : tf.tanh(x!)), [x]);
      x.dispose();
      return g;
    };
    expect(() => toOnnx(t(3), { inputNames: ['x'], outputName: 'y', batchTwins: [t(5)] })).toThrow(
      /changes with the batch size/,
    );
  });

  it('a shape that is not affine in the batch is caught by the third trace', () => {
    // Tile reps [b * b, 1]: 9 and 25 at batches 3 and 5 fit 8 * b - 15; the trace at 4 (16) refutes it.
    const t = (b: number) => {
      const x = tf.zeros([b, 2]);
      const g = traceKernels((x) => tf.slice(tf.tile(x!, [b * b, 1]), [0, 0], [b, 2]), [x]);
      x.dispose();
      return g;
    };
    const names = { inputNames: ['x'], outputName: 'y' };
    expect(() => toOnnx(t(3), { ...names, batchTwins: [t(5), t(4)] })).toThrow(
      /Tile: a shape entry \(9 at batch 3, 25 at batch 5, 16 at batch 4\) is not k \* batch \+ c/,
    );
  });
});

describe('runtimes: one session for every batch size', () => {
  it('onnxDenoiser (sync) and onnxDenoiserAsync (from one file) match tfjs at batches 1, 3, 8, 64', async () => {
    const net = createModel(mlpConfig({ dim: 2, numClasses: 2, width: 32, depth: 2 }), {
      seed: 16,
    }) as Mlp;
    randomize(net, 17);
    const sync = onnxDenoiser(net);
    const fromFile = await onnxDenoiserAsync(exportOnnx(net));
    expect(fromFile.batchSize).toBeUndefined();
    const level = { alpha: 0.8, sigma: 0.6 };
    for (const b of BATCHES) {
      const x = Random.seed(18 + b).normal([b, 2]);
      const labels = tf.tensor1d(
        Array.from({ length: b }, (_, i) => i % 3),
        'int32',
      );
      const ref = net.predict(x, level, { labels });
      const refData = (await ref.data()) as Float32Array;
      const a = sync.predict(x, level, { labels });
      const c = await fromFile.predictAsync(x, level, { labels });
      expect(relErr(refData, (await a.data()) as Float32Array)).toBeLessThanOrEqual(1e-4);
      expect(relErr(refData, (await c.data()) as Float32Array)).toBeLessThanOrEqual(1e-4);
      tf.dispose([x, labels, ref, a, c]);
    }
    sync.dispose();
    await fromFile.dispose();
    net.dispose();
  });
});
