/**
 * Every guidance wrapper over an `AsyncDenoiser`: the same model as a sync `Denoiser` and as an async
 * adapter (its `predictAsync` returns the sync prediction after a macrotask) must give the same
 * samples bit for bit through real sampler runs, leak nothing, and keep the typed errors.
 */
import { assertNoLeaks, initBackend, maxAbsDiff, readFloat32 } from '@diffuse/backend';
import type { AsyncDenoiser, Denoiser } from '@diffuse/models';
import { type SamplerName, sample } from '@diffuse/samplers';
import type { Prediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  type AnyDenoiser,
  type ClassifierLike,
  classifierFreeGuidance,
  classifierGuidance,
  dynamicThresholding,
  GuidanceError,
  guidedDenoiser,
  isAsyncDenoiser,
  mixtureClassifier,
  predictPair,
  repaint,
  sampleClipping,
  withX0Transform,
} from './index.js';
import { type AsyncSpy, asyncAdapter, imageGaussian, threeClassMixture } from './test-fixtures.js';

const gm = threeClassMixture();
let labels: tf.Tensor;
let negative: tf.Tensor;

beforeAll(async () => {
  await initBackend('wasm');
  labels = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32');
  negative = tf.tensor1d([1, 2, 0, 2, 0, 1, 1, 0], 'int32');
});
afterAll(() => tf.dispose([labels, negative]));

/** A wrapper under test: the model it wraps (a prediction type) and how it wraps either kind. */
interface Case {
  name: string;
  prediction: Prediction;
  wrap: (model: AnyDenoiser, make: (d: Denoiser) => AnyDenoiser) => AnyDenoiser;
}

const CASES: Case[] = [
  {
    name: 'CFG, one batched pass, rescale',
    prediction: 'epsilon',
    wrap: (d) => classifierFreeGuidance(d, { guidanceScale: 3, rescale: 0.7 }),
  },
  {
    name: 'CFG, two passes, w, rescale measured in x0',
    prediction: 'v',
    wrap: (d) =>
      classifierFreeGuidance(d, { w: 2, batchBranches: false, rescale: 0.5, rescaleSpace: 'x0' }),
  },
  {
    name: 'CFG, negative labels (a tensor)',
    prediction: 'x0',
    wrap: (d) => classifierFreeGuidance(d, { guidanceScale: 2, negativeLabels: negative }),
  },
  {
    name: 'CFG, guidance interval',
    prediction: 'epsilon',
    wrap: (d) =>
      classifierFreeGuidance(d, { guidanceScale: 4, interval: { sigmaLo: 0.3, sigmaHi: 3 } }),
  },
  {
    name: 'CFG, a separate unconditional model of the same kind',
    prediction: 'score',
    wrap: (d, make) =>
      classifierFreeGuidance(d, {
        guidanceScale: 2.5,
        unconditional: make(gm.denoiser('score')),
      }),
  },
  {
    name: 'classifier guidance (exact classifier)',
    prediction: 'epsilon',
    wrap: (d) => classifierGuidance(d, mixtureClassifier(gm), { scale: 2 }),
  },
  {
    name: 'classifier guidance of a conditional model, gamma 0.5',
    prediction: 'v',
    wrap: (d) =>
      classifierGuidance(d, mixtureClassifier(gm), { scale: 0.5, conditionDenoiser: true }),
  },
  {
    name: 'classifier guidance at gamma 0',
    prediction: 'x0',
    wrap: (d) => classifierGuidance(d, mixtureClassifier(gm), { scale: 0 }),
  },
  {
    name: 'dynamic thresholding',
    prediction: 'epsilon',
    wrap: (d) => dynamicThresholding(d, { percentile: 0.9, maxValue: 1.5 }),
  },
  {
    name: 'sample clipping',
    prediction: 'v',
    wrap: (d) => sampleClipping(d, { min: -0.8, max: 0.8 }),
  },
  {
    name: 'withX0Transform',
    prediction: 'score',
    wrap: (d) => withX0Transform(d, (x0) => tf.mul(tf.tanh(x0), 1.2)),
  },
  {
    name: 'guidedDenoiser: a custom step (two calls, a pure combination)',
    prediction: 'epsilon',
    wrap: (d) =>
      guidedDenoiser([d, d], d, (x, level, cond) => ({
        calls: [
          { x, level, ...(cond ? { cond } : {}) },
          { x: tf.mul(x, 0.9), level },
        ],
        combine: ([a, b]) => tf.add(tf.mul(a!, 0.8), tf.mul(b!, 0.2)),
      })),
  },
  {
    name: 'a stack: thresholding over CFG with rescale',
    prediction: 'v',
    wrap: (d) =>
      dynamicThresholding(classifierFreeGuidance(d, { guidanceScale: 5, rescale: 0.7 }), {
        percentile: 0.95,
      }),
  },
];

const SAMPLERS = ['dpmpp_2m', 'euler_ancestral'] as const;

function run(denoiser: AnyDenoiser, sampler: SamplerName): Promise<tf.Tensor> {
  return sample(denoiser, {
    sampler,
    steps: 8,
    sigmaMin: 0.02,
    sigmaMax: 20,
    shape: [8, 2],
    seed: 11,
    cond: { labels },
  });
}

describe.each(SAMPLERS)(
  '%s: a wrapper over an AsyncDenoiser samples as over the Denoiser',
  (sampler) => {
    it.each(CASES)('$name', async ({ prediction, wrap }) => {
      const model = gm.denoiser(prediction);
      const syncGuided = wrap(model, (d) => d);
      expect(isAsyncDenoiser(syncGuided)).toBe(false);
      const syncOut = await readFloat32(await run(syncGuided, sampler), true);

      const adapters: AsyncSpy[] = [];
      const make = (d: Denoiser) => {
        const a = asyncAdapter(d);
        adapters.push(a);
        return a;
      };
      const asyncGuided = wrap(make(model), make);
      expect(isAsyncDenoiser(asyncGuided)).toBe(true);
      expect('predict' in asyncGuided).toBe(false);
      expect(asyncGuided.prediction).toBe(prediction);
      const out = await assertNoLeaks(() => run(asyncGuided, sampler), 'async guided sampling');
      const asyncOut = await readFloat32(out, true);

      expect(adapters.every((a) => a.calls > 0)).toBe(true);
      expect(asyncOut.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(asyncOut, syncOut)).toBe(0);
    });
  },
);

describe('mixed and direct calls', () => {
  it('a sync conditional model with an async unconditional one gives an AsyncDenoiser, same numbers', async () => {
    const opts = { guidanceScale: 3 } as const;
    const syncOut = await readFloat32(
      await run(
        classifierFreeGuidance(gm.denoiser('epsilon'), {
          ...opts,
          unconditional: gm.denoiser('epsilon'),
        }),
        'dpmpp_2m',
      ),
      true,
    );
    const uncond = asyncAdapter(gm.denoiser('epsilon'));
    const mixed = classifierFreeGuidance(gm.denoiser('epsilon'), {
      ...opts,
      unconditional: uncond,
    });
    expectTypeOf(mixed).toEqualTypeOf<AsyncDenoiser>();
    expect(isAsyncDenoiser(mixed)).toBe(true);
    const out = await assertNoLeaks(() => run(mixed, 'dpmpp_2m'), 'mixed');
    expect(maxAbsDiff(await readFloat32(out, true), syncOut)).toBe(0);
    expect(uncond.calls).toBe(8);
  });

  it('predictPair over an AsyncDenoiser is one call of twice the batch, equal to the sync pair', async () => {
    const model = gm.denoiser('v');
    const adapter = asyncAdapter(model);
    const x = tf.randomNormal([8, 2], 0, 1, 'float32', 3);
    const nulls = tf.fill([8], 3, 'int32');
    const alpha = tf.fill([8, 1], 0.8);
    const sigma = tf.fill([8, 1], 0.6);
    const level = { alpha, sigma }; // per-example levels are duplicated along with the batch
    const [c, u] = predictPair(model, x, level, { labels }, nulls);
    const pair = await assertNoLeaks(
      () => predictPair(adapter, x, level, { labels }, nulls),
      'async predictPair',
    );
    expect(adapter.calls).toBe(1);
    expect(maxAbsDiff(await readFloat32(pair[0], true), await readFloat32(c, true))).toBe(0);
    expect(maxAbsDiff(await readFloat32(pair[1], true), await readFloat32(u, true))).toBe(0);
    tf.dispose([x, nulls, alpha, sigma]);
  });

  it('CFG over an AsyncDenoiser makes one model call per step (both branches batched)', async () => {
    const adapter = asyncAdapter(gm.denoiser('epsilon'));
    const seen: number[] = [];
    const counting: AsyncDenoiser = {
      ...adapter,
      predictAsync: (x, level, cond) => {
        seen.push(x.shape[0]!);
        return adapter.predictAsync(x, level, cond);
      },
    };
    const out = await run(classifierFreeGuidance(counting, { guidanceScale: 2 }), 'dpmpp_2m');
    out.dispose();
    expect(seen).toEqual(new Array(8).fill(16));
  });

  it('repaint with an AsyncDenoiser (and a guided one) fills as with the Denoiser', async () => {
    const { denoiser, h, w } = imageGaussian(4, 4);
    const image = tf.tidy(() => tf.reshape(tf.linspace(-0.5, 0.5, h * w), [1, h, w, 1]));
    const mask = tf.tidy(() =>
      tf.reshape(tf.tensor1d(Array.from({ length: h * w }, (_, i) => (i % w < 2 ? 1 : 0))), [
        1,
        h,
        w,
        1,
      ]),
    );
    const opts = {
      image,
      mask,
      batch: 3,
      schedule: 'karras',
      steps: 6,
      sigmaMin: 0.02,
      sigmaMax: 20,
      jumpLength: 2,
      resampleCount: 2,
      seed: 5,
    } as const;
    for (const wrap of [
      (d: AnyDenoiser) => d,
      (d: AnyDenoiser) => sampleClipping(d, { min: -1, max: 1 }),
    ]) {
      const a = await readFloat32(await repaint(wrap(denoiser), opts), true);
      const out = await assertNoLeaks(
        () => repaint(wrap(asyncAdapter(denoiser)), opts),
        'async repaint',
      );
      expect(maxAbsDiff(await readFloat32(out, true), a)).toBe(0);
    }
    tf.dispose([image, mask]);
  });

  it('overloads: a Denoiser gives a Denoiser, an AsyncDenoiser an AsyncDenoiser', () => {
    const d = gm.denoiser('epsilon');
    const a = asyncAdapter(d) as AsyncDenoiser;
    const clf = mixtureClassifier(gm);
    expectTypeOf(classifierFreeGuidance(d, { guidanceScale: 2 })).toEqualTypeOf<Denoiser>();
    expectTypeOf(classifierFreeGuidance(a, { guidanceScale: 2 })).toEqualTypeOf<AsyncDenoiser>();
    expectTypeOf(classifierGuidance(d, clf, { scale: 1 })).toEqualTypeOf<Denoiser>();
    expectTypeOf(classifierGuidance(a, clf, { scale: 1 })).toEqualTypeOf<AsyncDenoiser>();
    expectTypeOf(dynamicThresholding(d)).toEqualTypeOf<Denoiser>();
    expectTypeOf(dynamicThresholding(a)).toEqualTypeOf<AsyncDenoiser>();
    expectTypeOf(sampleClipping(a)).toEqualTypeOf<AsyncDenoiser>();
    expectTypeOf(withX0Transform(a, (x0) => x0)).toEqualTypeOf<AsyncDenoiser>();
    const either: AnyDenoiser = Math.random() < 2 ? a : d;
    expectTypeOf(classifierFreeGuidance(either, { w: 1 })).toEqualTypeOf<AnyDenoiser>();
    // A sync wrapper is unchanged: it has predict and no predictAsync.
    const g = classifierFreeGuidance(d, { guidanceScale: 2 });
    expect(typeof g.predict).toBe('function');
    expect('predictAsync' in g).toBe(false);
  });
});

describe('typed errors over an AsyncDenoiser', () => {
  const level = { alpha: 0.8, sigma: 0.6 };

  it('bad options and a non-denoiser fail at construction', () => {
    const a = asyncAdapter(gm.denoiser('epsilon'));
    expect(() => classifierFreeGuidance(a, { guidanceScale: Number.NaN })).toThrow(GuidanceError);
    expect(() => classifierFreeGuidance(a, { guidanceScale: 2, w: 1 })).toThrow(/exactly one/);
    expect(() => classifierFreeGuidance(a, { guidanceScale: 2, rescale: 2 })).toThrow(
      GuidanceError,
    );
    expect(() =>
      classifierFreeGuidance(a, {
        guidanceScale: 2,
        unconditional: asyncAdapter(gm.denoiser('v')),
      }),
    ).toThrow(/predicts 'v'/);
    expect(() =>
      classifierGuidance(a, mixtureClassifier(gm), { scale: Number.POSITIVE_INFINITY }),
    ).toThrow(GuidanceError);
    expect(() => dynamicThresholding(a, { percentile: 1.5 })).toThrow(GuidanceError);
    expect(() => sampleClipping(a, { min: 1, max: 0 })).toThrow(GuidanceError);
    const notADenoiser = { prediction: 'epsilon' } as unknown as AsyncDenoiser;
    expect(() => classifierFreeGuidance(notADenoiser, { guidanceScale: 2 })).toThrow(
      /Denoiser \(predict\) or an AsyncDenoiser \(predictAsync\)/,
    );
    expect(() => classifierGuidance(notADenoiser, mixtureClassifier(gm), { scale: 1 })).toThrow(
      GuidanceError,
    );
    expect(() => withX0Transform(notADenoiser, (x0) => x0)).toThrow(GuidanceError);
    const step = () => ({ calls: [], combine: () => tf.scalar(0) });
    expect(() => guidedDenoiser([], a, step)).toThrow(/at least one model/);
    expect(() => guidedDenoiser([a, notADenoiser], a, step)).toThrow(/models\[1\] must be/);
    expect(() =>
      classifierFreeGuidance(gm.denoiser('epsilon'), {
        guidanceScale: 2,
        unconditional: notADenoiser,
      }),
    ).toThrow(/unconditional must be/);
  });

  it('bad calls reject with a GuidanceError and leak nothing', async () => {
    const a = asyncAdapter(gm.denoiser('epsilon'));
    const cfg = classifierFreeGuidance(a, { guidanceScale: 2 });
    const cg = classifierGuidance(a, mixtureClassifier(gm), { scale: 1 });
    const x = tf.zeros([8, 2]);
    const wrong = tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 9], 'int32');
    const floats = tf.zeros([8]);
    await assertNoLeaks(async () => {
      for (const d of [cfg, cg]) {
        await expect(d.predictAsync(x, level)).rejects.toThrow(GuidanceError);
        await expect(d.predictAsync(x, level, { labels: wrong })).rejects.toThrow(/out of range/);
        await expect(d.predictAsync(x, level, { labels: floats })).rejects.toThrow(/int32/);
      }
    }, 'rejected calls');
    tf.dispose([x, wrong, floats]);
  });

  it('a model call that fails or resolves to a non-tensor rejects, and the wrapper leaks nothing', async () => {
    const x = tf.zeros([8, 2]);
    const failing: AsyncDenoiser = {
      prediction: 'epsilon',
      numClasses: 3,
      predictAsync: async () => {
        await new Promise((r) => setTimeout(r, 0));
        throw new Error('runtime failed');
      },
    };
    const notATensor = {
      prediction: 'epsilon',
      numClasses: 3,
      predictAsync: async () => [1, 2],
    } as unknown as AsyncDenoiser;
    // The conditional branch succeeds, the unconditional fails: the first prediction is disposed.
    const halfFailing = classifierFreeGuidance(asyncAdapter(gm.denoiser('epsilon')), {
      guidanceScale: 2,
      unconditional: failing,
    });
    const wrongLogits: ClassifierLike = {
      numClasses: 3,
      logits: (t) => tf.zeros([t.shape[0]!, 2]),
    };
    await assertNoLeaks(async () => {
      for (const wrap of [
        (d: AsyncDenoiser) => classifierFreeGuidance(d, { guidanceScale: 2 }),
        (d: AsyncDenoiser) => classifierFreeGuidance(d, { guidanceScale: 2, batchBranches: false }),
        (d: AsyncDenoiser) => classifierGuidance(d, mixtureClassifier(gm), { scale: 1 }),
        (d: AsyncDenoiser) => dynamicThresholding(d),
      ]) {
        await expect(wrap(failing).predictAsync(x, level, { labels })).rejects.toThrow(
          'runtime failed',
        );
        await expect(wrap(notATensor).predictAsync(x, level, { labels })).rejects.toThrow(
          /predictAsync resolved to object, not a tensor/,
        );
      }
      await expect(halfFailing.predictAsync(x, level, { labels })).rejects.toThrow(
        'runtime failed',
      );
      const bad = classifierGuidance(asyncAdapter(gm.denoiser('epsilon')), wrongLogits, {
        scale: 1,
      });
      await expect(bad.predictAsync(x, level, { labels })).rejects.toThrow(
        /logits of shape \[8, 3\]/,
      );
    }, 'failed calls');
    x.dispose();
  });
});
