import { assertNoLeaks, initBackend, maxAbsDiff, Random, readFloat32 } from '@diffuse/backend';
import type { Denoiser } from '@diffuse/models';
import { convertPrediction, PREDICTIONS, type Prediction, toX0 } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  dynamicThreshold,
  dynamicThresholding,
  GuidanceError,
  perExampleQuantile,
  sampleClipping,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** numpy.quantile / torch.quantile with linear interpolation, in float64. */
function quantileRef(values: ArrayLike<number>, p: number): number {
  const s = Float64Array.from(values).sort();
  const pos = p * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (pos - lo) * (s[hi]! - s[lo]!);
}

/** Imagen's rule in float64: s = clamp(quantile_p |x0|, 1, maxValue); clip(x0, -s, s) / s. */
function thresholdRef(
  x0: Float32Array,
  batch: number,
  p: number,
  maxValue = Infinity,
): Float64Array {
  const n = x0.length / batch;
  const out = new Float64Array(x0.length);
  for (let b = 0; b < batch; b++) {
    const row = x0.subarray(b * n, (b + 1) * n);
    const s = Math.min(Math.max(quantileRef(Array.from(row, Math.abs), p), 1), maxValue);
    for (let i = 0; i < n; i++) out[b * n + i] = Math.min(Math.max(row[i]!, -s), s) / s;
  }
  return out;
}

describe('perExampleQuantile', () => {
  it.each([0, 0.1, 0.5, 0.9, 0.995, 1])(
    'matches numpy linear interpolation at p = %s',
    async (p) => {
      const t = tf.tidy(() => tf.mul(Random.seed(7).normal([3, 7, 9]), 2));
      const v = await readFloat32(t);
      const q = await readFloat32(perExampleQuantile(t, p), true);
      const n = 63;
      const expected = [0, 1, 2].map((b) => quantileRef(v.subarray(b * n, (b + 1) * n), p));
      expect(maxAbsDiff(q, expected)).toBeLessThan(1e-6);
      t.dispose();
    },
  );
});

describe('dynamic thresholding (Imagen, Saharia et al. 2022, sec. 2.3)', () => {
  it('matches the reference rule, including maxValue (diffusers sample_max_value)', async () => {
    const x0 = tf.tidy(() =>
      tf.mul(Random.seed(8).normal([4, 8, 8, 1]), tf.tensor([0.1, 1.5, 3, 6], [4, 1, 1, 1])),
    );
    const v = await readFloat32(x0);
    for (const [p, maxValue] of [
      [0.995, Infinity],
      [0.9, Infinity],
      [0.995, 2],
      [0.5, Infinity],
    ] as const) {
      const out = await readFloat32(dynamicThreshold(x0, { percentile: p, maxValue }), true);
      expect(maxAbsDiff(out, thresholdRef(v, 4, p, maxValue))).toBeLessThan(1e-6);
      expect(Math.max(...out.map(Math.abs))).toBeLessThanOrEqual(1);
    }
    // The first example (std 0.1) has quantile < 1: s = 1, so it is only clipped (a no-op here).
    const out = await readFloat32(dynamicThreshold(x0), true);
    const first = v.subarray(0, 64).map((a) => Math.min(Math.max(a, -1), 1));
    expect(maxAbsDiff(out.subarray(0, 64), first)).toBe(0);
    x0.dispose();
  });

  /** A denoiser predicting x0 = 3 x (values far outside [-1, 1]) in the given prediction type. */
  function loud(prediction: Prediction): Denoiser {
    return {
      prediction,
      predict: (x, level) =>
        tf.tidy(() => convertPrediction(tf.mul(x, 3), 'x0', prediction, x, level)),
    };
  }

  it.each(PREDICTIONS)('as a denoiser wrapper, its x0 is the thresholded x0 (%s)', async (p) => {
    const x = Random.seed(9).normal([5, 16]);
    const level = { alpha: 0.8, sigma: 0.6 };
    const wrapped = dynamicThresholding(loud(p), { percentile: 0.95 });
    const x0 = await readFloat32(
      tf.tidy(() => toX0(wrapped.predict(x, level), p, x, level)),
      true,
    );
    const raw = await readFloat32(tf.mul(x, 3), true);
    expect(maxAbsDiff(x0, thresholdRef(raw, 5, 0.95))).toBeLessThan(5e-6);
    const clipped = sampleClipping(loud(p), { min: -1, max: 1 });
    const x0c = await readFloat32(
      tf.tidy(() => toX0(clipped.predict(x, level), p, x, level)),
      true,
    );
    expect(
      maxAbsDiff(
        x0c,
        raw.map((a) => Math.min(Math.max(a, -1), 1)),
      ),
    ).toBeLessThan(5e-6);
    x.dispose();
  });

  it('rejects bad options with typed errors, and leaks nothing', async () => {
    const d = loud('epsilon');
    expect(() => dynamicThresholding(d, { percentile: 1.5 })).toThrow(GuidanceError);
    expect(() => dynamicThresholding(d, { percentile: Number.NaN })).toThrow(
      /percentile must be a finite number/,
    );
    expect(() => dynamicThresholding(d, { maxValue: 0.5 })).toThrow(/maxValue must be >= 1/);
    expect(() => sampleClipping(d, { min: 1, max: -1 })).toThrow(/min < max/);
    const x = tf.ones([2, 4]);
    const out = await assertNoLeaks(
      () => dynamicThresholding(d).predict(x, { alpha: 0.6, sigma: 0.8 }),
      'threshold',
    );
    out.dispose();
    x.dispose();
  });
});
