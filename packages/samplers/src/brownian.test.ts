/**
 * `brownianNoise`: the normalised increments of one Brownian path over sigma (k-diffusion's
 * BrownianTreeNoiseSampler in distribution): N(0, 1) draws, correlated as their intervals overlap,
 * additive across a split interval, independent on disjoint ones; and the SDE scheduler classes draw
 * their default noise from it without leaking.
 */
import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { brownianNoise, createScheduler } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const N = 40_000;
const stats = (a: Float32Array, b: Float32Array) => {
  let [ma, mb, saa, sbb, sab] = [0, 0, 0, 0, 0];
  for (let i = 0; i < N; i++) {
    ma += a[i]! / N;
    mb += b[i]! / N;
  }
  for (let i = 0; i < N; i++) {
    const [x, y] = [a[i]! - ma, b[i]! - mb];
    saa += x * x;
    sbb += y * y;
    sab += x * y;
  }
  return { ma, varA: saa / N, rho: sab / Math.sqrt(saa * sbb) };
};

describe('brownianNoise', () => {
  it('draws N(0, 1) increments correlated as sqrt(overlap), independent on disjoint intervals', async () => {
    await assertNoLeaks(async () => {
      const noise = brownianNoise(Random.seed(5));
      const take = async (s: number, t: number) => {
        const z = noise(s, t, [N]);
        const v = (await z.data()) as Float32Array;
        z.dispose();
        return v;
      };
      // one DPM++ SDE step from 10: to the midpoint 4, then to 1
      const z1 = await take(10, 4);
      const z2 = await take(10, 1);
      const z3 = await take(1, 0.25); // the next step: a disjoint interval
      const a = stats(z1, z2);
      expect(Math.abs(a.ma)).toBeLessThan(0.02);
      expect(Math.abs(a.varA - 1)).toBeLessThan(0.03);
      expect(Math.abs(a.rho - Math.sqrt(6 / 9))).toBeLessThan(0.01);
      expect(Math.abs(stats(z2, z3).rho)).toBeLessThan(0.02);
      expect(Math.abs(stats(z3, z3).varA - 1)).toBeLessThan(0.03);
      // additive: sqrt(6) z(10 -> 4) + sqrt(3) z(4 -> 1) = sqrt(9) z(10 -> 1), whatever the order asked
      const z4 = await take(4, 1);
      for (let i = 0; i < 1000; i++)
        expect(Math.sqrt(6) * z1[i]! + Math.sqrt(3) * z4[i]!).toBeCloseTo(3 * z2[i]!, 4);
      noise.dispose();
    });
  });

  it('DPMSolverSDEScheduler and CosineDPMSolverMultistepScheduler use it by default: seeded, no leaks', async () => {
    for (const name of ['DPMSolverSDEScheduler', 'CosineDPMSolverMultistepScheduler']) {
      const run = (seed: number) =>
        assertNoLeaks(async () => {
          const s = createScheduler({ _class_name: name }, { seed });
          s.setTimesteps(5);
          let x = tf.fill([64, 2], 2);
          for (const t of s.timesteps) {
            const out = tf.mul(x, 0.1);
            const r = s.step(out, t, x);
            tf.dispose([out, x, r.predOriginalSample]);
            x = r.prevSample;
          }
          const v = Array.from(await x.data());
          x.dispose();
          s.dispose();
          return v;
        }, name);
      const [a, b, c] = [await run(1), await run(1), await run(2)];
      expect(a).toEqual(b);
      expect(a).not.toEqual(c);
      expect(a.every(Number.isFinite)).toBe(true);
    }
  });
});
