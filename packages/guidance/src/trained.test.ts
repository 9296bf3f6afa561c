/**
 * The table on the trained class-conditional 2-D model of @diffuse/train (an MLP on the
 * eight-Gaussians mixture, epsilon prediction, null class 8 learned by conditioning dropout):
 * class accuracy of classifier-free guided samples under the exact posterior of the data mixture.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { initBackend, readFloat32 } from '@diffuse/backend';
import { eightGaussians } from '@diffuse/data';
import { Mlp } from '@diffuse/models';
import { loadModelFiles } from '@diffuse/models/node';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { classifierFreeGuidance } from './index.js';

const WEIGHTS = fileURLToPath(new URL('../../train/weights/mixture-mlp', import.meta.url));
const N = 400;

beforeAll(async () => {
  await initBackend('wasm');
});

describe('CFG on the trained class-conditional 2-D MLP (@diffuse/train weights/mixture-mlp)', () => {
  // The weights are an artifact of @diffuse/train (`diffuse-train mixture`); without them there is
  // nothing to measure, and the oracle-pair table in accuracy.test.ts still runs.
  it.skipIf(!existsSync(`${WEIGHTS}.safetensors`))(
    'class accuracy under the exact posterior rises with the guidance scale',
    async () => {
      const loaded = await loadModelFiles(WEIGHTS);
      if (!(loaded instanceof Mlp))
        throw new Error(`expected an Mlp in ${WEIGHTS}, got ${loaded.constructor.name}`);
      const model = loaded;
      const toy = eightGaussians();
      expect(model.numClasses).toBe(8);
      const ys = Int32Array.from({ length: N }, (_, i) => i % 8);
      const labels = tf.tensor1d(ys, 'int32');
      const table: [number, number][] = [];
      for (const s of [0, 0.25, 0.5, 0.75, 1, 3]) {
        const guided = classifierFreeGuidance(model, { guidanceScale: s });
        const x = await sample(guided, {
          sampler: 'dpmpp_2m',
          steps: 20,
          shape: [N, 2],
          seed: 3,
          cond: { labels },
        });
        const pred = await readFloat32(
          tf.tidy(() => tf.argMax(toy.mixture.classLogPosterior(x, { alpha: 1, sigma: 0 }), 1)),
          true,
        );
        let hit = 0;
        for (let i = 0; i < N; i++) if (pred[i] === ys[i]) hit++;
        table.push([s, hit / N]);
        x.dispose();
      }
      labels.dispose();
      model.dispose();
      console.log(
        `CFG, trained 8-class MLP (eight Gaussians), dpmpp_2m 20 steps, N = ${N}\n` +
          table
            .map(([s, a]) => `  guidance_scale ${s} (w = ${s - 1}): accuracy ${a.toFixed(3)}`)
            .join('\n'),
      );
      const acc = table.map(([, a]) => a);
      expect(acc[0]!).toBeLessThan(0.3); // unconditional: about 1/8
      for (let k = 1; k < acc.length; k++) {
        if (acc[k - 1]! < 0.99) expect(acc[k]!).toBeGreaterThan(acc[k - 1]!);
        else expect(acc[k]!).toBeGreaterThanOrEqual(0.98);
      }
    },
  );
});
