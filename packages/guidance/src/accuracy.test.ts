/**
 * The measurement behind the table: class accuracy of classifier-free guided samples,
 * judged by the exact posterior p(y | x) of the mixture oracle, as the guidance scale grows.
 */
import { initBackend, Random, readFloat32 } from '@diffuse/backend';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { classifierFreeGuidance, classifierGuidance, mixtureClassifier } from './index.js';
import { threeClassMixture } from './test-fixtures.js';

const gm = threeClassMixture();
const N = 600;

beforeAll(async () => {
  await initBackend('wasm');
});

/** Fraction of samples whose exact MAP class under p_0(y | x) is the class they were drawn for. */
async function accuracy(x: tf.Tensor, labels: Int32Array): Promise<number> {
  const post = await readFloat32(
    tf.tidy(() => tf.argMax(gm.classLogPosterior(x, { alpha: 1, sigma: 0 }), 1)),
    true,
  );
  let hit = 0;
  for (let i = 0; i < labels.length; i++) if (post[i] === labels[i]) hit++;
  return hit / labels.length;
}

describe('guided samples: class accuracy under the exact posterior rises with the guidance scale', () => {
  const ys = Int32Array.from({ length: N }, (_, i) => i % 3);

  it('classifier-free guidance with the oracle pair (exact conditional and marginal)', async () => {
    // The exact conditional at scale 1 reaches the Bayes accuracy of true class-conditional draws.
    const truth = gm.sample(N, Random.seed(21), ys);
    const bayes = await accuracy(truth, ys);
    truth.dispose();
    const labels = tf.tensor1d(ys, 'int32');
    const scales = [0, 0.5, 1, 1.5, 2, 3, 5];
    const table: [number, number][] = [];
    for (const s of scales) {
      const guided = classifierFreeGuidance(gm.denoiser('epsilon'), { guidanceScale: s });
      const x = await sample(guided, {
        sampler: 'dpmpp_2m',
        steps: 30,
        sigmaMin: 0.002,
        sigmaMax: 40,
        shape: [N, 2],
        seed: 5,
        cond: { labels },
      });
      table.push([s, await accuracy(x, ys)]);
      x.dispose();
    }
    labels.dispose();
    console.log(
      `CFG (oracle pair, dpmpp_2m 30 steps, N = ${N}); Bayes accuracy of true conditional draws ${bayes.toFixed(3)}\n` +
        table
          .map(([s, a]) => `  guidance_scale ${s} (w = ${s - 1}): accuracy ${a.toFixed(3)}`)
          .join('\n'),
    );
    const acc = table.map(([, a]) => a);
    // Scale 0 is the unconditional model: accuracy near chance weighted by the class overlap.
    expect(acc[0]!).toBeLessThan(0.5);
    // Scale 1 samples p(x | y): its accuracy matches true draws within sampling error (~2 sd = 0.03).
    expect(Math.abs(acc[2]! - bayes)).toBeLessThan(0.04);
    // Rising until it saturates at 1 (same seed for every scale, so the noise is shared).
    for (let k = 1; k < acc.length; k++) {
      if (acc[k - 1]! < 0.99) expect(acc[k]!).toBeGreaterThan(acc[k - 1]!);
      else expect(acc[k]!).toBeGreaterThanOrEqual(0.99);
    }
    expect(acc.at(-1)!).toBeGreaterThan(0.99);
  });

  it('classifier guidance with the exact classifier', async () => {
    const labels = tf.tensor1d(ys, 'int32');
    const table: [number, number][] = [];
    for (const gamma of [0, 0.5, 1, 2, 4]) {
      const guided = classifierGuidance(gm.denoiser('epsilon'), mixtureClassifier(gm), {
        scale: gamma,
      });
      const x = await sample(guided, {
        sampler: 'dpmpp_2m',
        steps: 30,
        sigmaMin: 0.002,
        sigmaMax: 40,
        shape: [N, 2],
        seed: 6,
        cond: { labels },
      });
      table.push([gamma, await accuracy(x, ys)]);
      x.dispose();
    }
    labels.dispose();
    console.log(
      `classifier guidance (exact classifier, dpmpp_2m 30 steps, N = ${N})\n` +
        table.map(([g, a]) => `  gamma ${g}: accuracy ${a.toFixed(3)}`).join('\n'),
    );
    const acc = table.map(([, a]) => a);
    for (let k = 1; k < acc.length; k++) {
      if (acc[k - 1]! < 0.99) expect(acc[k]!).toBeGreaterThan(acc[k - 1]!);
      else expect(acc[k]!).toBeGreaterThanOrEqual(0.99);
    }
  });
});
