/**
 * The noise-conditional MNIST classifier that guides sampling (`diffuse-train mnist-noisy-classifier`):
 * its loss noises each example at its own drawn level exactly as x_t = alpha x0 + sigma eps, and the
 * shipped weights classify held-out noisy digits as well as their metrics file says.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, Random } from '@diffuse/backend';
import type { ArrayDataset } from '@diffuse/data';
import type { LogSNRSampler } from '@diffuse/losses';
import type { NoiseLevel } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  loadClassifier,
  noisyAccuracy,
  noisyClassifierLoss,
  REPORT_LOGSNRS,
  split,
} from './cli/classifier.js';

const weights = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'weights',
  'mnist-noisy-classifier',
);

beforeAll(async () => {
  await initBackend('wasm');
});

/**
 * All 10,000 digits, through Node's own loader: `require` of the built `@diffuse/data` (its JSON
 * digit files are imported natively), as the data package's tests do by configuration. Through
 * Vitest's transform pipeline the 21 MB of digit JSON takes minutes on a busy 2-core machine.
 */
function loadMnistNatively(): Promise<ArrayDataset> {
  const data = createRequire(import.meta.url)('@diffuse/data') as typeof import('@diffuse/data');
  return data.loadMnist();
}

/** A sampler that always returns the given logSNRs (density 1). */
function fixedLevels(logSNR: number[]): LogSNRSampler {
  return {
    name: 'fixed',
    logSNRMin: Math.min(...logSNR),
    logSNRMax: Math.max(...logSNR),
    sample: (n: number) => ({
      t: new Float64Array(n),
      logSNR: Float64Array.from(logSNR.slice(0, n)),
      density: new Float64Array(n).fill(1),
    }),
  } as unknown as LogSNRSampler;
}

describe('noisyClassifierLoss', () => {
  it('noises every example at its own level and returns the cross-entropy of the logits at that level', async () => {
    const logSNR = [6, 0, -3];
    const seen: { x?: Float32Array; alpha?: Float32Array; sigma?: Float32Array } = {};
    const logitsOut = [
      [2, 0, -1],
      [0, 1, 0],
      [-1, -1, 3],
    ];
    const spy = {
      numClasses: 3,
      logits: (x: tf.Tensor, level: NoiseLevel<number | tf.Tensor>) => {
        seen.x = x.dataSync() as Float32Array;
        seen.alpha = (level.alpha as tf.Tensor).dataSync() as Float32Array;
        seen.sigma = (level.sigma as tf.Tensor).dataSync() as Float32Array;
        return tf.tensor2d(logitsOut);
      },
    };
    const d = 4000;
    const x0 = tf.tidy(() => tf.mul(tf.ones([3, d]), tf.tensor2d([[1], [-0.5], [0.25]])));
    const labels = tf.tensor1d([0, 2, 2], 'int32');
    const loss = noisyClassifierLoss(spy, fixedLevels(logSNR))({ x: x0, labels }, Random.seed(3));
    const value = (await loss.data())[0]!;
    // Cross-entropy by hand: mean_i (logsumexp(z_i) - z_i[y_i]).
    const ce = logitsOut.map((z, i) => {
      const m = Math.max(...z);
      const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
      return lse - z[[0, 2, 2][i]!]!;
    });
    expect(value).toBeCloseTo(ce.reduce((a, b) => a + b) / 3, 5);
    for (let i = 0; i < 3; i++) {
      const l = logSNR[i]!;
      const alpha = Math.sqrt(1 / (1 + Math.exp(-l)));
      const sigma = Math.sqrt(1 / (1 + Math.exp(l)));
      expect(seen.alpha![i]).toBeCloseTo(alpha, 6);
      expect(seen.sigma![i]).toBeCloseTo(sigma, 6);
      // (x_t - alpha x0) / sigma is the example's noise: mean 0, variance 1 over its d pixels.
      const x0i = [1, -0.5, 0.25][i]!;
      let m1 = 0;
      let m2 = 0;
      for (let j = 0; j < d; j++) {
        const e = (seen.x![i * d + j]! - alpha * x0i) / sigma;
        m1 += e / d;
        m2 += (e * e) / d;
      }
      expect(Math.abs(m1)).toBeLessThan(4 / Math.sqrt(d));
      expect(Math.abs(m2 - 1)).toBeLessThan(6 * Math.sqrt(2 / d));
    }
    tf.dispose([loss, x0, labels]);
  });
});

describe.skipIf(!existsSync(`${weights}.safetensors`))('shipped mnist-noisy-classifier', () => {
  it('classifies held-out noisy digits as its metrics say: well when clean, less with more noise, above chance at logSNR -4', async () => {
    const metrics = JSON.parse(await readFile(`${weights}.metrics.json`, 'utf8')) as {
      testAccuracyByLogSNR: { logSNR: number; accuracy: number }[];
    };
    const clf = await loadClassifier(weights);
    const mnist = await loadMnistNatively();
    const { test } = split(mnist, clf.config.inputShape);
    const x = tf.tensor(test.x, [test.count, ...clf.config.inputShape]);
    const acc = await noisyAccuracy(clf, x, test.labels, REPORT_LOGSNRS);
    tf.dispose(x);
    clf.dispose();
    // The same seeded noise as the training script's final evaluation: the same numbers.
    for (const { logSNR, accuracy } of metrics.testAccuracyByLogSNR) {
      expect(acc[String(logSNR)], `logSNR ${logSNR}`).toBeCloseTo(accuracy, 2);
    }
    expect(acc['8']).toBeGreaterThan(0.9);
    expect(acc['0']).toBeGreaterThan(0.75);
    // Chance is 0.1; one standard error of a 1,000-digit accuracy near it is 0.01.
    expect(acc['-4']).toBeGreaterThan(0.15);
    expect(acc['8']).toBeGreaterThanOrEqual(acc['0']!);
    expect(acc['0']).toBeGreaterThan(acc['-4']!);
  });
});
