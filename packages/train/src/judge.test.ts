/**
 * The MNIST judge (`diffuse-train mnist-judge`) and the Fréchet reference of `eval-mnist`: the shift
 * augmentation moves pixels exactly; the shipped judge reads held-out digits as well as its metrics
 * file says (>= 98%, issue 20); and the Fréchet distance in its feature space separates real held-out
 * digits (the floor) from images that are not digits.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, Random } from '@diffuse/backend';
import type { ArrayDataset } from '@diffuse/data';
import { classifierFreeGuidance, sampleClipping } from '@diffuse/guidance';
import type { NetworkDenoiser } from '@diffuse/models';
import { loadModelFiles } from '@diffuse/models/node';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { frechetReference } from './cli/classifier.js';
import { judgeAccuracy, judgeImages, loadJudge, shiftedBatch, shiftImage } from './cli/judge.js';
import { frechetDistance, gaussianStats } from './metrics.js';

const weights = join(dirname(fileURLToPath(import.meta.url)), '..', 'weights', 'mnist-judge');

beforeAll(async () => {
  await initBackend('wasm');
});

/** The data package through Node's own loader (its JSON digit files; see noisy-classifier.test.ts). */
function dataPackage(): typeof import('@diffuse/data') {
  return createRequire(import.meta.url)('@diffuse/data') as typeof import('@diffuse/data');
}

describe('shiftImage', () => {
  it('moves every pixel by (dy, dx) and fills the uncovered border with the background', () => {
    const src = Float32Array.from({ length: 12 }, (_, i) => i); // 3 x 4
    const dst = new Float32Array(12);
    shiftImage(src, dst, 3, 4, 1, -2);
    // row 0 is uncovered; row i takes row i - 1, column j takes column j + 2
    expect(Array.from(dst)).toEqual([-1, -1, -1, -1, 2, 3, -1, -1, 6, 7, -1, -1]);
    shiftImage(src, dst, 3, 4, 0, 0);
    expect(Array.from(dst)).toEqual(Array.from(src));
  });

  it('shiftedBatch: seeded, shifts within the bound, labels of the digits drawn', () => {
    const ds: ArrayDataset = {
      x: new Float32Array(2 * 25).fill(-1),
      labels: Int32Array.of(3, 8),
      count: 2,
      shape: [5, 5, 1],
      numClasses: 10,
    };
    ds.x[12] = 1; // a single ink pixel in the centre of digit 0
    ds.x[25 + 12] = 1;
    const a = shiftedBatch(ds, 16, 1, Random.seed(5));
    const b = shiftedBatch(ds, 16, 1, Random.seed(5));
    expect(Array.from(a.x.dataSync())).toEqual(Array.from(b.x.dataSync()));
    const xs = a.x.dataSync();
    const seen = new Set<number>();
    for (let i = 0; i < 16; i++) {
      const ink = [...xs.subarray(i * 25, (i + 1) * 25)].flatMap((v, k) => (v === 1 ? [k] : []));
      expect(ink.length).toBe(1);
      const [r, c] = [Math.floor(ink[0]! / 5), ink[0]! % 5];
      expect(Math.abs(r - 2)).toBeLessThanOrEqual(1);
      expect(Math.abs(c - 2)).toBeLessThanOrEqual(1);
      seen.add(ink[0]!);
    }
    expect(seen.size).toBeGreaterThan(3);
    expect(new Set(a.labels.dataSync())).toEqual(new Set([3, 8]));
    tf.dispose([a.x, a.labels, b.x, b.labels]);
  });
});

describe.skipIf(!existsSync(`${weights}.safetensors`))('shipped mnist-judge', () => {
  it('reads the 1,000 held-out digits (never trained on) at >= 98%, as its metrics file says', async () => {
    const judge = await loadJudge(weights);
    const { heldOut } = dataPackage().splitMnist(await dataPackage().loadMnist());
    const acc = await judgeAccuracy(judge, heldOut);
    const metrics = JSON.parse(await readFile(`${weights}.metrics.json`, 'utf8'));
    expect(acc.accuracy).toBe(metrics.heldOutAccuracy);
    expect(acc.accuracy).toBeGreaterThanOrEqual(0.98);
    expect(metrics.split.judge.residues).toEqual([1, 2, 3, 4]);
    judge.dispose();
  });

  it('Fréchet distance in its features: held-out halves (the floor) far below non-digits', async () => {
    const judge = await loadJudge(weights);
    const { heldOut } = dataPackage().splitMnist(await dataPackage().loadMnist());
    const { reference, floor, halfSize } = await frechetReference(judge, heldOut);
    expect(halfSize).toBe(500);
    expect(floor).toBeGreaterThan(0);
    const fd = async (x: tf.Tensor) => {
      const { features, dim } = await judgeImages(judge, x);
      x.dispose();
      return frechetDistance(gaussianStats(features, dim), reference);
    };
    // uniform noise in [-1, 1], and half B of the held-out digits (which score the floor) upside down
    const halfB = dataPackage().subset(
      heldOut,
      Array.from({ length: 500 }, (_, i) => 2 * i + 1),
    );
    const noise = await fd(Random.seed(1).uniform([500, 28, 28, 1], -1, 1));
    const flipped = await fd(tf.tidy(() => tf.reverse(tf.tensor4d(halfB.x, [500, 28, 28, 1]), 1)));
    const same = await fd(tf.tensor4d(halfB.x, [500, 28, 28, 1]));
    expect(same).toBeCloseTo(floor, 9);
    expect(noise).toBeGreaterThan(20 * floor);
    expect(flipped).toBeGreaterThan(3 * floor);
    judge.dispose();
  });
});

/**
 * Issue 20, item 5's check, in Node: at least 12 of 16 classifier-free-guided samples (s = 3) of a
 * digit are read by the judge as that digit. It runs when the shipped `mnist-unet`'s metrics file
 * records >= 90% at s = 3 over 500 samples (the EDM model shipped in session 7: 100%; the epsilon
 * model before it read 67%, and a 16-sample draw at 67% reaches 12 only about a third of the time,
 * so the check was skipped for it). `MNIST_CHECK_ANYWAY=1` runs it regardless.
 */
const unetBase = join(dirname(fileURLToPath(import.meta.url)), '..', 'weights', 'mnist-unet');
const unetCfg: number | undefined = existsSync(`${unetBase}.metrics.json`)
  ? JSON.parse(readFileSync(`${unetBase}.metrics.json`, 'utf8')).sampleEvaluation?.guidance3
      ?.accuracy
  : undefined;

describe.skipIf(
  !(unetCfg !== undefined && unetCfg >= 0.9) && process.env.MNIST_CHECK_ANYWAY !== '1',
)('shipped mnist-unet read by the judge', () => {
  it.each([7, 3])(
    'at least 12 of 16 classifier-free-guided samples of %i read as that digit',
    async (digit) => {
      const unet = (await loadModelFiles(unetBase)) as NetworkDenoiser;
      const judge = await loadJudge(weights);
      const labels = tf.fill([16], digit, 'int32');
      const x = await sample(sampleClipping(classifierFreeGuidance(unet, { guidanceScale: 3 })), {
        sampler: 'dpmpp_2m',
        steps: 20,
        shape: [16, 28, 28, 1],
        rng: Random.seed(digit),
        cond: { labels },
      });
      const clipped = tf.clipByValue(x, -1, 1);
      const { classes } = await judgeImages(judge, clipped);
      const right = classes.filter((c) => c === digit).length;
      console.log(
        `digit ${digit}: ${right} of 16 read as ${digit} (read as ${Array.from(classes).join(' ')})`,
      );
      expect(right).toBeGreaterThanOrEqual(12);
      tf.dispose([labels, x, clipped]);
      unet.dispose();
      judge.dispose();
    },
    300_000,
  );
});
