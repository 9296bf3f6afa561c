import { assertNoLeaksSync, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { vpLevelFromLogSNR, vpLevelFromLogSNRTensor } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('vpLevelFromLogSNRTensor', () => {
  const lambdas = [-100, -60, -20, -5, -1, -0.1, 0, 0.3, 2, 7, 20, 60, 100];

  it('equals the float64 vpLevelFromLogSNR elementwise to float32 precision, also at |lambda| = 100', () => {
    const { alpha, sigma } = vpLevelFromLogSNRTensor(tf.tensor1d(lambdas));
    const [a, s] = [alpha.dataSync(), sigma.dataSync()];
    tf.dispose([alpha, sigma]);
    lambdas.forEach((l, k) => {
      const want = vpLevelFromLogSNR(l);
      // sqrt(sigmoid(-100)) in float32 is 0; the level is exp(-50) = 1.9e-22.
      expect(relErr(a[k]!, want.alpha)).toBeLessThan(1e-6);
      expect(relErr(s[k]!, want.sigma)).toBeLessThan(1e-6);
      if (Math.abs(l) <= 20) expect(a[k]! ** 2 + s[k]! ** 2).toBeCloseTo(1, 6);
    });
  });

  it('keeps the input shape ([batch, 1, 1] broadcasts against data) and leaks nothing', () => {
    const l = tf.tensor3d([[[1]], [[-2]]]);
    const level = assertNoLeaksSync(() => {
      const r = vpLevelFromLogSNRTensor(l);
      return [r.alpha, r.sigma];
    }, 'vpLevelFromLogSNRTensor');
    expect(level[0]!.shape).toEqual([2, 1, 1]);
    expect(level[1]!.shape).toEqual([2, 1, 1]);
    tf.dispose([l, ...level]);
  });

  it('gradient d alpha / d lambda = alpha sigmoid(-lambda) / 2 and d sigma / d lambda = -sigma sigmoid(lambda) / 2, finite everywhere', () => {
    const x = tf.tensor1d(lambdas);
    const da = tf.grad((l: tf.Tensor) => tf.sum(vpLevelFromLogSNRTensor(l).alpha))(x);
    const ds = tf.grad((l: tf.Tensor) => tf.sum(vpLevelFromLogSNRTensor(l).sigma))(x);
    const [ga, gs] = [da.dataSync(), ds.dataSync()];
    tf.dispose([x, da, ds]);
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    lambdas.forEach((l, k) => {
      const { alpha, sigma } = vpLevelFromLogSNR(l);
      expect(Number.isFinite(ga[k]!) && Number.isFinite(gs[k]!)).toBe(true);
      // Relative 1e-5, or below float32's normal range (sigmoid(-100) / 2 = 1.9e-44 flushes to 0).
      const close = (g: number, want: number) =>
        Math.abs(g - want) <= 1e-5 * Math.abs(want) + 1e-38;
      expect(close(ga[k]!, (alpha * sig(-l)) / 2)).toBe(true);
      expect(close(gs[k]!, (-sigma * sig(l)) / 2)).toBe(true);
    });
  });
});
