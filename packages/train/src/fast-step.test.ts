/**
 * The fast wasm training step (Diffuse's SIMD conv2d / matMul / GroupNorm / Adam kernels, Adam
 * written in place) against the plain tfjs step on the same backend (`useSimdKernels(false)`:
 * tfjs-wasm's own XNNPACK kernels and composed tfjs ops, Adam allocating new tensors): the same loss
 * curve over 100 Adam steps from one seed, within float32 rounding (the summation orders differ).
 */
import { initBackend, Random, useSimdKernels } from '@diffuse/backend';
import { uniformTimeSampler } from '@diffuse/losses';
import { Mlp, mlpConfig, type NetworkDenoiser, UNet, unetConfig } from '@diffuse/models';
import { CosineSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam, diffusionLoss } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const STEPS = 100;

/** The losses of `STEPS` Adam steps on fixed data, the fast path on or off. */
async function curve(make: () => NetworkDenoiser, batch: number, fast: boolean) {
  useSimdKernels(fast);
  const model = make();
  const adam = new Adam(model.params, { learningRate: 2e-3 });
  adam.inPlace = fast;
  const loss = diffusionLoss(model, { sampler: uniformTimeSampler(new CosineSchedule()) });
  const rng = Random.seed(11);
  const x = tf.tidy(() =>
    tf.add(tf.mul(Random.seed(12).normal([batch, ...model.shape]), 0.5), 0.3),
  );
  const losses: number[] = [];
  try {
    for (let i = 0; i < STEPS; i++) {
      const { value, grads } = tf.variableGrads(() => loss({ x }, rng), model.params);
      adam.apply(model.params.map((p) => grads[p.name]!)).dispose();
      losses.push((await value.data())[0]!);
      tf.dispose([value, ...Object.values(grads)]);
    }
  } finally {
    useSimdKernels(true);
    adam.dispose();
    x.dispose();
    model.dispose();
  }
  return losses;
}

/** max_i |a_i - b_i| / |b_i| */
function maxRelDiff(a: number[], b: number[]): number {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!) / Math.abs(b[i]!)));
}

describe('the fast wasm training step follows the plain tfjs step', () => {
  it('MLP, 100 Adam steps: every loss within 1e-5 relative (measured: 2e-7), and it learns', async () => {
    const make = () => new Mlp(mlpConfig({ dim: 2, width: 64, depth: 2 }), { seed: 3 });
    const fast = await curve(make, 256, true);
    const plain = await curve(make, 256, false);
    expect(maxRelDiff(fast, plain)).toBeLessThan(1e-5);
    const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
    expect(mean(fast.slice(-10))).toBeLessThan(0.8 * mean(fast.slice(0, 10)));
  }, 60_000);

  it('U-Net with attention, 100 Adam steps: every loss within 1e-4 relative (measured: 4e-7)', async () => {
    const make = () =>
      new UNet(
        unetConfig({
          imageShape: [8, 8, 1],
          channels: 16,
          channelMults: [1, 2],
          numResBlocks: 1,
          attentionResolutions: [4],
          groups: 4,
          embedDim: 32,
        }),
        { seed: 4 },
      );
    const fast = await curve(make, 4, true);
    const plain = await curve(make, 4, false);
    expect(maxRelDiff(fast, plain)).toBeLessThan(1e-4);
  }, 120_000);
});
