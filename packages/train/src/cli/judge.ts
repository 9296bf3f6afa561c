/**
 * `diffuse-train mnist-judge`: the classifier that judges the U-Net's samples (issue 20, item 2).
 *
 * A plain convnet (`ImageClassifier` of `@diffuse/models`: 3x3 convs of 16 / 32 / 32 channels at
 * 28 -> 14 -> 7, a hidden layer of 128, ReLU) trained on the `judge` part of `splitMnist` (4,000
 * digits the U-Net never sees) with random shifts of up to 2 pixels, measured on the `heldOut` part
 * (1,000 digits neither model sees). Its class decides whether a sample "reads as" the digit asked
 * for; its 128 penultimate features are the space of the Fréchet distance (`eval-mnist`).
 */

import type { Random } from '@diffuse/backend';
import { type ArrayDataset, loadMnist, MNIST_SPLIT, splitMnist } from '@diffuse/data';
import { ImageClassifier, imageClassifierConfig, loadModel } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { type CommonOptions, runRecipe, setUp } from './common.js';

/** The judge's network: 16 / 32 / 32 conv channels, hidden 128 (penultimate features), 10 classes. */
export const JUDGE_CONFIG = imageClassifierConfig({
  inputShape: [28, 28, 1],
  numClasses: 10,
  channels: [16, 32, 32],
  hidden: 128,
});

/**
 * Copies image `src` ([h, w] of one channel, row-major) into `dst` shifted by (dy, dx) pixels, filling
 * the uncovered border with `background` (-1: MNIST's blank in [-1, 1]). The augmentation of the
 * judge's training digits (Simard et al. 2003 use such small distortions on MNIST).
 *
 * @example
 * shiftImage(digit, out, 28, 28, 1, -2, -1); // one pixel down, two left
 */
export function shiftImage(
  src: Float32Array,
  dst: Float32Array,
  h: number,
  w: number,
  dy: number,
  dx: number,
  background = -1,
): void {
  for (let i = 0; i < h; i++) {
    const si = i - dy;
    for (let j = 0; j < w; j++) {
      const sj = j - dx;
      dst[i * w + j] = si >= 0 && si < h && sj >= 0 && sj < w ? src[si * w + sj]! : background;
    }
  }
}

/**
 * A batch of `n` digits of `ds` drawn uniformly with replacement from the seeded stream, each
 * shifted by a uniform (dy, dx) in [-maxShift, maxShift]^2.
 *
 * @example
 * const { x, labels } = shiftedBatch(judgeDigits, 64, 2, Random.seed(0)); // x [64, 28, 28, 1]
 */
export function shiftedBatch(
  ds: ArrayDataset,
  n: number,
  maxShift: number,
  rng: Random,
): { x: tf.Tensor; labels: tf.Tensor1D } {
  const [h, w] = ds.shape as [number, number, number];
  const px = h * w;
  const x = new Float32Array(n * px);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = rng.int(ds.count);
    const dy = rng.int(2 * maxShift + 1) - maxShift;
    const dx = rng.int(2 * maxShift + 1) - maxShift;
    shiftImage(ds.x.subarray(j * px, (j + 1) * px), x.subarray(i * px, (i + 1) * px), h, w, dy, dx);
    labels[i] = ds.labels[j]!;
  }
  return { x: tf.tensor4d(x, [n, h, w, 1]), labels: tf.tensor1d(labels, 'int32') };
}

/** Predicted classes and penultimate features of images [n, 28, 28, 1], in chunks of `chunk`. */
export async function judgeImages(
  judge: ImageClassifier,
  x: tf.Tensor,
  chunk = 250,
): Promise<{ classes: Int32Array; features: Float32Array; dim: number }> {
  const n = x.shape[0]!;
  const dim = judge.config.hidden;
  const classes = new Int32Array(n);
  const features = new Float32Array(n * dim);
  for (let s = 0; s < n; s += chunk) {
    const size = Math.min(chunk, n - s);
    const [f, c] = tf.tidy(() => {
      const feats = judge.features(tf.slice(x, s, size));
      return [feats, tf.cast(tf.argMax(judge.logitsOfFeatures(feats), 1), 'int32')];
    });
    features.set(await f!.data(), s * dim);
    classes.set(await c!.data(), s);
    tf.dispose([f!, c!]);
  }
  return { classes, features, dim };
}

/** Accuracy overall and per class of `judge` on a data set. */
export async function judgeAccuracy(
  judge: ImageClassifier,
  ds: ArrayDataset,
): Promise<{ accuracy: number; perClass: number[] }> {
  const x = tf.tensor4d(ds.x, [ds.count, ...ds.shape] as [number, number, number, number]);
  const { classes } = await judgeImages(judge, x);
  x.dispose();
  const right = new Array(10).fill(0);
  const total = new Array(10).fill(0);
  for (let i = 0; i < ds.count; i++) {
    total[ds.labels[i]!]++;
    if (classes[i] === ds.labels[i]) right[ds.labels[i]!]++;
  }
  return {
    accuracy: right.reduce((a, b) => a + b, 0) / ds.count,
    perClass: right.map((r, c) => r / total[c]),
  };
}

/** Loads a judge saved by `mnist-judge` (an `image-classifier` config). */
export async function loadJudge(base: string): Promise<ImageClassifier> {
  const { readFile } = await import('node:fs/promises');
  const weights = await readFile(`${base}.safetensors`);
  const config = JSON.parse(await readFile(`${base}.json`, 'utf8'));
  if (config?.kind !== 'image-classifier') {
    throw new Error(
      `${base}.json is a '${String(config?.kind)}' model; the judge must be an 'image-classifier' (diffuse-train mnist-judge)`,
    );
  }
  return loadModel({
    config,
    weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength),
  }) as ImageClassifier;
}

/** `diffuse-train mnist-judge`. */
export async function trainMnistJudge(o: CommonOptions): Promise<void> {
  await setUp(o.backend);
  const { judge: train, heldOut } = splitMnist(await loadMnist());
  const clf = new ImageClassifier(JUDGE_CONFIG, { seed: o.seed });
  console.log(`judge convnet: ${clf.numParams} parameters; ${train.count} training digits`);
  const maxShift = 2;
  await runRecipe<{ x: tf.Tensor; labels: tf.Tensor1D }>(o, {
    label: 'judge',
    lineEvery: 50,
    model: clf,
    data: (rng) => shiftedBatch(train, o.batchSize, maxShift, rng),
    objective: {
      loss: (b) =>
        tf.tidy(
          () =>
            tf.losses.softmaxCrossEntropy(
              tf.oneHot(tf.cast(b.labels, 'int32'), 10),
              clf.logits(b.x),
            ) as tf.Scalar,
        ),
    },
    optimizer: { warmupSteps: 50, clipNorm: 5, minLearningRate: o.learningRate / 20 },
    evaluate: {
      every: 250,
      fn: async () => ({ heldOutAccuracy: (await judgeAccuracy(clf, heldOut)).accuracy }),
    },
    checkpointEvery: 250,
    results: async () => {
      const held = await judgeAccuracy(clf, heldOut);
      const seen = await judgeAccuracy(clf, train);
      console.log(`held-out accuracy (${heldOut.count} digits): ${held.accuracy}`);
      return {
        split: {
          by: "index i of loadMnist() (all 10,000 digits of the 'mnist' package, in its order), i mod 10",
          heldOut: { residues: MNIST_SPLIT.heldOut, digits: heldOut.count },
          judge: { residues: MNIST_SPLIT.judge, digits: train.count },
          generator: {
            residues: MNIST_SPLIT.generator,
            digits: 10_000 - heldOut.count - train.count,
          },
        },
        augmentation: `uniform shifts of up to ${maxShift} pixels in each direction`,
        heldOutAccuracy: held.accuracy,
        heldOutPerClass: held.perClass,
        trainAccuracy: seen.accuracy,
      };
    },
  });
}
