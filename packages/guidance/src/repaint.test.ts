import { assertNoLeaks, initBackend, Random, readFloat32 } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { GuidanceError, REPAINT_MAX_WALK, repaint, repaintWalk } from './index.js';
import { gaussianConditional, imageGaussian } from './test-fixtures.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('repaintWalk (RePaint sec. 4.2, diffusers RePaintScheduler.set_timesteps)', () => {
  it('matches hand-traced walks', () => {
    expect(repaintWalk(4, { jumpLength: 2, resampleCount: 2 })).toEqual([
      4, 3, 2, 1, 0, 1, 2, 1, 0,
    ]);
    expect(repaintWalk(3, { jumpLength: 1, resampleCount: 3 })).toEqual([
      3, 2, 1, 2, 1, 2, 1, 0, 1, 0, 1, 0,
    ]);
    expect(repaintWalk(5, { jumpLength: 1, resampleCount: 1 })).toEqual([5, 4, 3, 2, 1, 0]);
  });

  it('moves by one state, ends at 0, and denoises N + (r - 1) J (#jumps) times', () => {
    for (const [N, J, r] of [
      [50, 10, 10],
      [20, 3, 4],
      [7, 7, 3],
      [30, 1, 2],
    ] as const) {
      const walk = repaintWalk(N, { jumpLength: J, resampleCount: r });
      expect(walk[0]).toBe(N);
      expect(walk.at(-1)).toBe(0);
      let down = 0;
      for (let k = 1; k < walk.length; k++) {
        expect(Math.abs(walk[k]! - walk[k - 1]!)).toBe(1);
        if (walk[k]! < walk[k - 1]!) down++;
      }
      const jumps = Math.max(0, Math.ceil((N - J) / J));
      expect(down).toBe(N + (r - 1) * J * jumps);
    }
  });

  it('rejects bad settings', () => {
    expect(() => repaintWalk(0)).toThrow(GuidanceError);
    expect(() => repaintWalk(10, { jumpLength: 0 })).toThrow(/jumpLength/);
    expect(() => repaintWalk(10, { resampleCount: 1.5 })).toThrow(/resampleCount/);
  });

  it('refuses a walk longer than REPAINT_MAX_WALK before building it (a fuzz seed filled the heap with r = 1e12)', () => {
    const t0 = performance.now();
    expect(() => repaintWalk(2, { jumpLength: 1, resampleCount: 1e12 })).toThrow(
      /RePaint's walk would take 2000000000001 steps/,
    );
    expect(() => repaintWalk(1e12, { jumpLength: 1, resampleCount: 1 })).toThrow(GuidanceError);
    expect(performance.now() - t0).toBeLessThan(100);
    // the limit is exact: the walk's length is 1 + N + 2 J (r - 1) (#jump points)
    expect(repaintWalk(1000, { jumpLength: 10, resampleCount: 3 }).length).toBe(
      1 + 1000 + 2 * 10 * 2 * 99,
    );
    expect(REPAINT_MAX_WALK).toBe(10_000_000);
  });
});

describe('RePaint on an image-shaped Gaussian oracle (8 x 8, smooth covariance)', () => {
  const { gm, mean, cov, denoiser, d } = imageGaussian();
  // Known: the left half (columns 0-3) and the top row; unknown: the rest.
  const knownIdx: number[] = [];
  const unknownIdx: number[] = [];
  for (let i = 0; i < d; i++) (i % 8 < 4 || i < 8 ? knownIdx : unknownIdx).push(i);
  const maskArr = Float32Array.from({ length: d }, (_, i) => (knownIdx.includes(i) ? 1 : 0));
  const plan = { schedule: 'karras' as const, steps: 20, sigmaMin: 0.01, sigmaMax: 40 };

  it('keeps the known region exactly and moves the unknown one towards p(x_u | x_k); resampling helps', async () => {
    const batch = 300;
    const image = tf.tidy(() => tf.reshape(gm.sample(1, Random.seed(99)), [1, 8, 8, 1]));
    const mask = tf.tensor(maskArr, [1, 8, 8, 1]);
    const img = await readFloat32(image);
    const exact = gaussianConditional(
      mean,
      cov,
      knownIdx,
      unknownIdx,
      knownIdx.map((k) => img[k]!),
    );
    // How far the conditional mean lies from the prior mean: the shift inpainting has to achieve.
    const shift = Math.hypot(...unknownIdx.map((u, k) => mean[u]! - exact.mean[k]!));
    const rows: string[] = [];
    const relErr: number[] = [];
    for (const [resampleCount, jumpLength] of [
      [1, 1],
      [8, 1],
    ] as const) {
      const progress: number[] = [];
      const out = await repaint(denoiser, {
        image,
        mask,
        batch,
        ...plan,
        jumpLength,
        resampleCount,
        seed: 7,
        onProgress: ({ move }) => {
          progress.push(move);
        },
      });
      expect(out.shape).toEqual([batch, 8, 8, 1]);
      expect(progress.length).toBe(repaintWalk(20, { jumpLength, resampleCount }).length - 1);
      const xs = await readFloat32(out, true);
      // Known region: the last level is sigma = 0, where the replacement alpha x0 + sigma eps is x0.
      let knownErr = 0;
      for (let b = 0; b < batch; b++) {
        for (const k of knownIdx) knownErr = Math.max(knownErr, Math.abs(xs[b * d + k]! - img[k]!));
      }
      expect(knownErr).toBeLessThanOrEqual(1e-6);
      const m = unknownIdx.map((u) => {
        let s = 0;
        for (let b = 0; b < batch; b++) s += xs[b * d + u]!;
        return s / batch;
      });
      const v = unknownIdx.map((u, k) => {
        let s = 0;
        for (let b = 0; b < batch; b++) s += (xs[b * d + u]! - m[k]!) ** 2;
        return s / (batch - 1);
      });
      const err = Math.hypot(...m.map((mi, k) => mi - exact.mean[k]!)) / shift;
      const varRatio = v.reduce((a, vi, k) => a + vi / exact.variance[k]!, 0) / v.length;
      relErr.push(err);
      rows.push(
        `  r=${resampleCount} J=${jumpLength}: known-region max error ${knownErr}, ` +
          `|mean - conditional mean| / |prior mean - conditional mean| = ${err.toFixed(3)}, variance ratio ${varRatio.toFixed(3)}`,
      );
    }
    console.log(
      `RePaint, 8x8 Gaussian oracle, karras 20 steps, ddpm, batch ${batch}:\n${rows.join('\n')}`,
    );
    // Replacement alone conditions only partly (a known weakness, RePaint sec. 4.2); resampling must
    // close a clear part of the remaining gap (measured: 0.88 -> 0.70). Sampling noise on the ratio: ~0.03.
    expect(relErr[0]!).toBeLessThan(1);
    expect(relErr[1]!).toBeLessThan(relErr[0]! - 0.08);
    tf.dispose([image, mask]);
  });

  it('rejects mismatched masks, bad mask values and missing noise with typed errors; leaks nothing', async () => {
    const image = tf.zeros([2, 8, 8, 1]);
    const wrongMask = tf.ones([2, 8, 7, 1]);
    await expect(repaint(denoiser, { image, mask: wrongMask, ...plan, seed: 1 })).rejects.toThrow(
      /mask has shape \[2, 8, 7, 1\], which does not match the samples' shape \[2, 8, 8, 1\]/,
    );
    const rankMask = tf.ones([8, 8]);
    await expect(repaint(denoiser, { image, mask: rankMask, ...plan, seed: 1 })).rejects.toThrow(
      GuidanceError,
    );
    const badValues = tf.fill([1, 8, 8, 1], 2);
    await expect(repaint(denoiser, { image, mask: badValues, ...plan, seed: 1 })).rejects.toThrow(
      /mask values must lie in \[0, 1\]/,
    );
    const mask = tf.tensor(maskArr, [1, 8, 8, 1]);
    await expect(repaint(denoiser, { image, mask, ...plan })).rejects.toThrow(/give seed or rng/);
    await expect(
      repaint(denoiser, { image, mask, ...plan, seed: 1, jumpLength: 0 }),
    ).rejects.toThrow(/jumpLength/);
    const out = await assertNoLeaks(
      () =>
        repaint(denoiser, {
          image,
          mask,
          schedule: 'karras',
          steps: 4,
          jumpLength: 2,
          resampleCount: 2,
          seed: 1,
        }),
      'repaint',
    );
    expect(out.shape).toEqual([2, 8, 8, 1]);
    tf.dispose([out, image, wrongMask, rankMask, badValues, mask]);
  });
});
