/**
 * Untrusted configs and weights (issue 17): a file's config is validated and its tensor list checked
 * against the config before anything is allocated; errors are typed and name the field; no leaks.
 */
import { assertNoLeaks, initBackend, liveTensors } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  classifierConfig,
  copyWeights,
  createModel,
  DEFAULT_MAX_PARAMS,
  loadModel,
  type ModelConfig,
  ModelConfigError,
  ModelError,
  mlpConfig,
  modelParameterShapes,
  SafetensorsError,
  saveModel,
  serializeSafetensors,
  unetConfig,
  validateModelConfig,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** Bytes of the wasm heap (it only grows). */
function wasmHeapBytes(): number {
  const wasm = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm;
  return wasm.HEAPU8.buffer.byteLength;
}

/** A tiny safetensors file whose metadata claims `config` (one 4-byte tensor). */
function fileClaiming(config: unknown): Uint8Array {
  return serializeSafetensors(
    { 'embed.fc1.bias': { dtype: 'F32', shape: [1], data: new Uint8Array(4) } },
    { format: 'diffuse', 'diffuse.config': JSON.stringify(config) },
  );
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

/** Runs `fn`, expects a typed error; returns it with the heap growth and time taken. */
function hostile(fn: () => unknown) {
  const heap = wasmHeapBytes();
  const live = liveTensors();
  const t0 = performance.now();
  const err = thrown(fn);
  return {
    err,
    ms: performance.now() - t0,
    heapGrowth: wasmHeapBytes() - heap,
    leaked: liveTensors() - live,
  };
}

const small = mlpConfig({ dim: 2, width: 8, depth: 1, embedDim: 8 });

describe('loadModel does not trust the config in a file (issue 17 cases)', () => {
  it('a ~200-byte file claiming width 3000 fails before allocating (the heap does not grow)', () => {
    const bytes = fileClaiming({ ...small, width: 3000, depth: 3 });
    expect(bytes.byteLength).toBeLessThan(400);
    const r = hostile(() => loadModel({ weights: bytes }));
    expect(r.err).toBeInstanceOf(ModelError);
    expect((r.err as Error).message).toMatch(/lack parameter 'embed\.fc1\.weight'/);
    expect(r.heapGrowth).toBe(0);
    expect(r.leaked).toBe(0);
  });

  it('depth 1e9 returns at once with a budget error (no hang)', () => {
    const r = hostile(() => loadModel({ weights: fileClaiming({ ...small, depth: 1e9 }) }));
    expect(r.err).toBeInstanceOf(ModelConfigError);
    expect((r.err as ModelConfigError).field).toBe('maxParams');
    expect(r.ms).toBeLessThan(1000);
    const c = hostile(() => createModel({ ...small, depth: 1e9 }));
    expect((c.err as ModelConfigError).field).toBe('maxParams');
    expect(c.ms).toBeLessThan(1000);
    expect(c.heapGrowth + c.leaked).toBe(0);
  });

  it('width 100000 is a budget error naming maxParams, with no tensor left alive', () => {
    for (const make of [
      () => loadModel({ weights: fileClaiming({ ...small, width: 100_000 }) }),
      () => createModel({ ...small, width: 100_000 }),
    ]) {
      const r = hostile(make);
      expect(r.err).toBeInstanceOf(ModelConfigError);
      expect((r.err as ModelConfigError).field).toBe('maxParams');
      expect((r.err as Error).message).toMatch(/maxParams = 100000000/);
      expect(r.leaked).toBe(0);
      expect(r.heapGrowth).toBe(0);
    }
  });

  it("{ kind: 'unet' } names the missing field (createModel and loadModel)", () => {
    for (const make of [
      () => createModel({ kind: 'unet' } as ModelConfig),
      () => loadModel({ weights: fileClaiming({ kind: 'unet' }) }),
    ]) {
      const err = thrown(make) as ModelConfigError;
      expect(err).toBeInstanceOf(ModelConfigError);
      expect(err.field).toBe('unet.imageShape');
    }
  });

  it('a tensor of the wrong shape is found from the header, before the network is built', async () => {
    const net = createModel(small, { seed: 1 });
    const saved = await saveModel(net);
    net.dispose();
    const big = { ...small, width: 2000 }; // 8 M parameters if it were built
    const heap = wasmHeapBytes();
    const err = thrown(() => loadModel({ config: big, weights: saved.weights })) as Error;
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toMatch(
      /parameter 'in\.weight' has shape \[2, 8\] in the file, expected \[2, 2000\]/,
    );
    expect(wasmHeapBytes()).toBe(heap);
  });

  it('integer tensors, extra tensors and a non-JSON config are typed errors', async () => {
    const net = createModel(small, { seed: 1 });
    const saved = await saveModel(net);
    net.dispose();
    await assertNoLeaks(() => {
      const bad = serializeSafetensors(
        { 'embed.fc1.bias': { dtype: 'I32', shape: [8], data: new Uint8Array(32) } },
        { 'diffuse.config': '{"kind":' },
      );
      const e1 = thrown(() => loadModel({ weights: bad })) as ModelConfigError;
      expect(e1).toBeInstanceOf(ModelConfigError);
      expect(e1.field).toBe('diffuse.config');
      expect(thrown(() => loadModel({ weights: new Uint8Array(3) }))).toBeInstanceOf(
        SafetensorsError,
      );
      expect(thrown(() => loadModel(null as never))).toBeInstanceOf(ModelError);
      expect(thrown(() => loadModel({ weights: 'abc' as never }))).toBeInstanceOf(ModelError);
    }, 'bad files');
    expect(saved.weights.byteLength).toBeGreaterThan(0);
  });
});

describe('validateModelConfig', () => {
  const cases: [string, unknown, string][] = [
    ['width as a string', { ...small, width: '8' }, 'mlp.width'],
    ['fractional depth', { ...small, depth: 1.5 }, 'mlp.depth'],
    ['negative numClasses', { ...small, numClasses: -1 }, 'mlp.numClasses'],
    ['odd embedDim', { ...small, embedDim: 7 }, 'mlp.embedDim'],
    ['unknown prediction', { ...small, prediction: 'noise' }, 'mlp.prediction'],
    ['unknown key', { ...small, widht: 8 }, 'mlp.widht'],
    [
      'EDM preconditioning with epsilon',
      { ...small, preconditioning: { type: 'edm', sigmaData: 0.5 } },
      'mlp.prediction',
    ],
    [
      'sigmaData 0',
      { ...small, prediction: 'x0', preconditioning: { type: 'edm', sigmaData: 0 } },
      'mlp.preconditioning.sigmaData',
    ],
    ['image shape of 2', { ...unetConfig(), imageShape: [28, 28] }, 'unet.imageShape'],
    ['image side 0', { ...unetConfig(), imageShape: [0, 28, 1] }, 'unet.imageShape[0]'],
    ['side not divisible', { ...unetConfig(), imageShape: [27, 28, 1] }, 'unet.imageShape'],
    ['groups not dividing', { ...unetConfig(), groups: 5 }, 'unet.groups'],
    ['numResBlocks 0', { ...unetConfig(), numResBlocks: 0 }, 'unet.numResBlocks'],
    ['no levels', { ...unetConfig(), channelMults: [] }, 'unet.channelMults'],
    [
      'attention resolution NaN',
      { ...unetConfig(), attentionResolutions: [Number.NaN] },
      'unet.attentionResolutions[0]',
    ],
    [
      'classifier rank 2 input',
      classifierConfig({ inputShape: [2, 2], numClasses: 3 }),
      'classifier.inputShape',
    ],
    [
      'classifier without classes',
      classifierConfig({ inputShape: [2], numClasses: 0 }),
      'classifier.numClasses',
    ],
    [
      'sparse image shape (a hole)',
      {
        ...unetConfig(),
        imageShape: (() => {
          const a = new Array(3);
          a[0] = 28;
          a[2] = 1;
          return a;
        })(),
      },
      'unet.imageShape[1]',
    ],
    ['null', null as never, 'config'],
    ['an array', [] as never, 'config'],
    ['kind missing', { width: 3 }, 'kind'],
    ['kind __proto__', { kind: '__proto__' }, 'kind'],
  ];
  it.each(cases)('%s -> ModelConfigError on %s', (_, config, field) => {
    const err = thrown(() => validateModelConfig(config)) as ModelConfigError;
    expect(err).toBeInstanceOf(ModelConfigError);
    expect(err.field).toBe(field);
    expect(err.code).toBe('INVALID_MODEL_CONFIG');
    // and every constructor path gives the same typed error, without leaks
    const live = liveTensors();
    const err2 = thrown(() => createModel(config as unknown as ModelConfig)) as ModelConfigError;
    expect(err2.field).toBe(field);
    expect(liveTensors()).toBe(live);
  });

  it('returns a copy of a valid config (no shared arrays)', () => {
    const c = unetConfig();
    const v = validateModelConfig(c);
    expect(v).toEqual(c);
    expect((v as typeof c).imageShape).not.toBe(c.imageShape);
  });
});

describe('modelParameterShapes: the parameter list from the config alone', () => {
  it('equals the built networks parameters for every kind', () => {
    for (const config of [
      mlpConfig({ dim: 3, width: 16, depth: 2, embedDim: 8, numClasses: 4 }),
      unetConfig({ imageShape: [8, 8, 1], channels: 8, groups: 4, attentionResolutions: [4] }),
      classifierConfig({ inputShape: [8, 8, 2], numClasses: 3, channels: 8, groups: 4 }),
      classifierConfig({ inputShape: [5], numClasses: 3, width: 16 }),
    ]) {
      const net = createModel(config);
      expect(modelParameterShapes(config)).toEqual(net.namedParams().map(([n, v]) => [n, v.shape]));
      net.dispose();
    }
  });

  it('the budget: maxParams below the count is refused, raising it builds', () => {
    const config = mlpConfig({ dim: 2, width: 64, depth: 2 });
    const n = modelParameterShapes(config).reduce(
      (s, [, shape]) => s + shape.reduce((a, b) => a * b, 1),
      0,
    );
    expect(n).toBeLessThan(DEFAULT_MAX_PARAMS);
    const err = thrown(() => createModel(config, { maxParams: n - 1 })) as ModelConfigError;
    expect(err.field).toBe('maxParams');
    const net = createModel(config, { maxParams: n });
    expect(net.numParams).toBe(n);
    net.dispose();
    expect((thrown(() => createModel(config, { maxParams: -1 })) as ModelConfigError).field).toBe(
      'maxParams',
    );
  });
});

describe('the activation budget: a config that could be built but never run', () => {
  it('attention scores of one example over 1 GiB are refused from the config alone', () => {
    const heap = wasmHeapBytes();
    const big = unetConfig({
      imageShape: [256, 256, 1],
      channelMults: [1, 2, 2],
      attentionResolutions: [256],
    });
    const t0 = performance.now();
    const e1 = thrown(() => createModel(big)) as ModelConfigError;
    expect(e1).toBeInstanceOf(ModelConfigError);
    expect(e1.field).toBe('unet.attentionResolutions');
    expect(e1.message).toMatch(/17\.2 GB activation/); // (256^2)^2 float32 scores
    // the middle block attends at the lowest level: one level at 256 x 256 is refused as well
    const mid = unetConfig({
      imageShape: [256, 256, 1],
      channelMults: [1],
      attentionResolutions: [],
    });
    expect((thrown(() => createModel(mid)) as ModelConfigError).field).toBe('unet.imageShape');
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(wasmHeapBytes()).toBe(heap);
    // within the default budget: attention at 64 x 64 (64 MB of scores)
    expect(modelParameterShapes({ ...big, attentionResolutions: [64] }).length).toBeGreaterThan(0);
    // raising the budget accepts it (shapes only: nothing allocated)
    expect(modelParameterShapes(big, { maxActivationBytes: 2 ** 36 }).length).toBeGreaterThan(0);
  });
});

describe('copyWeights', () => {
  it('names the first differing parameter and both shapes', () => {
    const a = createModel(small);
    const b = createModel({ ...small, width: 16 });
    const c = createModel({ ...small, depth: 2 });
    expect(() => copyWeights(a, b)).toThrow(
      "parameter 4: the source has 'in.weight' [2, 8], the target 'in.weight' [2, 16]",
    );
    expect(() => copyWeights(a, c)).toThrow(
      /the source has 'out\.weight' \[8, 2\], the target 'blocks\.1\.fc1\.weight' \[8, 8\] \(source 14 parameters, target 20\)/,
    );
    expect(() => copyWeights(a, b)).toThrow(ModelError);
    const d = createModel(small, { seed: 9 });
    copyWeights(d, a);
    expect(Array.from(a.params[0]!.dataSync())).toEqual(Array.from(d.params[0]!.dataSync()));
    for (const m of [a, b, c, d]) m.dispose();
  });
});
