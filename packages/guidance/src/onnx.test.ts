/**
 * Guidance on real ONNX Runtime: a small class-conditional MLP exported with `@diffuse/onnx` and run
 * by onnxruntime-node as an `AsyncDenoiser` (`onnxDenoiserAsync`), wrapped by the same guidance as the
 * tfjs model, must give the same samples through a sampler. ONNX Runtime's kernels differ from tfjs'
 * in float32 rounding, so the runs agree to a tolerance: 1e-4 of the sample scale (max |x|), the
 * tolerance `@diffuse/onnx` states for one prediction (measured: 3e-7 to 1.3e-6 of the scale, 10
 * steps of dpmpp_2m, euler_ancestral, euler, heun).
 *
 * The examples have 8 dimensions: guidance rescale divides by each example's std over its
 * dimensions, which for 2-D examples is ill-conditioned (std(guided) near 0) and amplified the same
 * float32 differences to 2.5e-3 of the scale in one measured euler_ancestral run.
 */
import { assertNoLeaks, initBackend, Random, readFloat32 } from '@diffuse/backend';
import {
  classifierConfig,
  createModel,
  type Mlp,
  mlpConfig,
  NoiseConditionalClassifier,
} from '@diffuse/models';
import { onnxDenoiserAsync } from '@diffuse/onnx';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AnyDenoiser,
  classifierFreeGuidance,
  classifierGuidance,
  dynamicThresholding,
  isAsyncDenoiser,
} from './index.js';

const TOLERANCE = 1e-4; // of the sample scale

let net: Mlp;
let classifier: NoiseConditionalClassifier;
let onnx: Awaited<ReturnType<typeof onnxDenoiserAsync>>;
let labels: tf.Tensor;

/** Random weights of scale 0.2 (a fresh network's output layer may start at zero). */
function randomize(model: { params: tf.Variable[] }, seed: number): void {
  const rng = Random.seed(seed);
  for (const p of model.params) {
    const v = tf.tidy(() => tf.mul(rng.normal(p.shape), 0.2));
    p.assign(v);
    v.dispose();
  }
}

beforeAll(async () => {
  await initBackend('wasm');
  net = createModel(mlpConfig({ dim: 8, numClasses: 3, width: 32, depth: 2 }), {
    seed: 1,
  }) as Mlp;
  randomize(net, 2);
  classifier = new NoiseConditionalClassifier(
    classifierConfig({ inputShape: [8], numClasses: 3, width: 16, depth: 2 }),
    { seed: 3 },
  );
  randomize(classifier, 4);
  onnx = await onnxDenoiserAsync(net, { threads: 1 });
  labels = tf.tensor1d(
    Array.from({ length: 32 }, (_, i) => i % 3),
    'int32',
  );
});

afterAll(async () => {
  await onnx?.dispose();
  net?.dispose();
  classifier?.dispose();
  labels?.dispose();
});

/** max |a - b| / max |a|, after checking the scale is not degenerate. */
async function relativeError(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const av = await readFloat32(a, true);
  const bv = await readFloat32(b, true);
  expect(bv.length).toBe(av.length);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < av.length; i++) {
    scale = Math.max(scale, Math.abs(av[i]!));
    err = Math.max(err, Math.abs(av[i]! - bv[i]!));
  }
  expect(scale).toBeGreaterThan(0.1);
  return err / scale;
}

const GUIDANCE: [string, (d: AnyDenoiser) => AnyDenoiser][] = [
  [
    'CFG s = 3, rescale 0.7 (one batched call)',
    (d) => classifierFreeGuidance(d, { guidanceScale: 3, rescale: 0.7 }),
  ],
  [
    'thresholding over CFG w = 2, two passes',
    (d) =>
      dynamicThresholding(classifierFreeGuidance(d, { w: 2, batchBranches: false }), {
        percentile: 0.95,
      }),
  ],
  [
    'classifier guidance (tfjs classifier) of the conditional ONNX model',
    (d) => classifierGuidance(d, classifier, { scale: 2, conditionDenoiser: true }),
  ],
];

describe('guidance over onnxruntime-node (AsyncDenoiser)', () => {
  it.each(GUIDANCE)(
    '%s matches the tfjs model through dpmpp_2m and euler_ancestral',
    async (_, wrap) => {
      const guided = wrap(onnx);
      expect(isAsyncDenoiser(guided)).toBe(true);
      for (const sampler of ['dpmpp_2m', 'euler_ancestral'] as const) {
        const opts = { sampler, steps: 10, shape: [32, 8], seed: 5, cond: { labels } };
        const reference = await sample(wrap(net), opts);
        const out = await assertNoLeaks(() => sample(guided, opts), `onnx ${sampler}`);
        expect(await relativeError(reference, out)).toBeLessThanOrEqual(TOLERANCE);
      }
    },
  );

  it('guidance changes the ONNX samples by far more than the tolerance (the comparison can fail)', async () => {
    const opts = {
      sampler: 'dpmpp_2m' as const,
      steps: 10,
      shape: [32, 8],
      seed: 5,
      cond: { labels },
    };
    const plain = await sample(onnx, opts);
    const guided = await sample(classifierFreeGuidance(onnx, { guidanceScale: 3 }), opts);
    expect(await relativeError(plain, guided)).toBeGreaterThan(100 * TOLERANCE);
  });
});
