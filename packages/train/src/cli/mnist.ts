/**
 * `diffuse-train mnist`: the class-conditional MNIST U-Net the demo ships (epsilon prediction, cosine
 * logSNR schedule, conditioning dropout 0.1 for classifier-free guidance, EMA weights).
 */

import { Random } from '@diffuse/backend';
import {
  type ArrayDataset,
  loadMnist,
  ShuffledBatches,
  type ShuffledBatchesState,
  splitMnist,
  subset,
} from '@diffuse/data';
import {
  edmLogNormalSampler,
  edmWeighting,
  type LogSNRSampler,
  minSNRWeighting,
  uniformTimeSampler,
  uniformWeighting,
  type Weighting,
} from '@diffuse/losses';
import { Ema, type NetworkDenoiser, UNet, type UNetConfig, unetConfig } from '@diffuse/models';
import { addNoise, CosineSchedule, toX0, vpLevelFromLogSNR } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { DiffusionBatch } from '../diffusion.js';
import type { BatchSource } from '../trainer.js';
import { type CommonOptions, gradientsFor, runRecipe, setUp } from './common.js';

/** What the `mnist` U-Net predicts (`--prediction`): epsilon, v, or x0 under EDM preconditioning. */
export type MnistPrediction = 'epsilon' | 'v' | 'edm';

/** The shape of the `mnist` U-Net (`--channels`, `--res-blocks`, `--attention`). */
export interface MnistNetwork {
  channels: number;
  numResBlocks?: number;
  /** Resolutions with self-attention besides the middle block (default none). */
  attention?: number[];
  prediction?: MnistPrediction;
}

/** The U-Net of the demo: small enough to train on 2 CPU cores. */
export function mnistUNetConfig(net: number | MnistNetwork): UNetConfig {
  const n: MnistNetwork = typeof net === 'number' ? { channels: net } : net;
  const prediction = n.prediction ?? 'epsilon';
  return unetConfig({
    imageShape: [28, 28, 1],
    channels: n.channels,
    channelMults: [1, 2],
    numResBlocks: n.numResBlocks ?? 1,
    attentionResolutions: n.attention ?? [],
    groups: 8,
    embedDim: 64,
    numClasses: 10,
    prediction: prediction === 'edm' ? 'x0' : prediction,
    ...(prediction === 'edm' ? { preconditioning: { type: 'edm' as const, sigmaData: 0.5 } } : {}),
  });
}

/** Loss weightings the `mnist` command offers (`--weighting`). */
export type MnistWeighting = 'epsilon' | 'min-snr' | 'edm';

/** Noise-level distributions the `mnist` command offers (`--noise`). */
export type MnistNoise = 'cosine' | 'edm';

/**
 * The loss weighting: 'epsilon', the plain epsilon MSE (Ho et al. 2020); 'min-snr', Min-SNR-5 (Hang
 * et al. 2023; on epsilon min(SNR, 5) / SNR <= 1: shifts weight from the nearly clean levels to the
 * noisy ones where a digit's class and shape are decided); 'edm', EDM's lambda(sigma) with sigma_data
 * 0.5 (Karras et al. 2022, eq. 8; unit weight on the preconditioned network's target). A v-space
 * weighting (epsilon MSE times 1 + 1/SNR) is unbounded at logSNR -15 for an epsilon network and made
 * gradient norms of 30-200 in a trial.
 */
export function mnistWeighting(w: MnistWeighting): Weighting {
  if (w === 'min-snr') return minSNRWeighting(5);
  if (w === 'edm') return edmWeighting(0.5);
  return uniformWeighting('epsilon');
}

/**
 * The noise levels of training: 'cosine', uniform t under the cosine logSNR schedule in [-15, 15]
 * (Nichol & Dhariwal 2021); 'edm', EDM's log-normal ln(sigma / alpha) ~ N(-1.2, 1.2^2) (Karras et al.
 * 2022, sec. 5).
 */
export function mnistNoise(n: MnistNoise): LogSNRSampler {
  return n === 'edm' ? edmLogNormalSampler() : uniformTimeSampler(new CosineSchedule());
}

/** A checkpointable batch source over a shuffled data set. */
export function shuffledSource(
  ds: ArrayDataset,
  batchSize: number,
  seed: number,
): BatchSource<{ x: tf.Tensor; labels: tf.Tensor1D }> {
  let it = new ShuffledBatches(ds, { batchSize, seed });
  return {
    next: () => it.next(),
    state: () => it.state(),
    restore: (s) => {
      it = ShuffledBatches.restore(ds, s as ShuffledBatchesState);
    },
  };
}

/** Options of `diffuse-train mnist` beyond the common ones. */
export interface MnistOptions extends MnistNetwork {
  weighting?: MnistWeighting;
  noise?: MnistNoise;
  /** Probability of training an example with the null class (classifier-free guidance; default 0.1). */
  condDropout?: number;
  /** EMA decay (default 0.999, with warm-up). */
  emaDecay?: number;
  /** Train on the `generator` part of `splitMnist` (default) or on all 10,000 digits (older runs). */
  data?: 'generator' | 'all';
}

/**
 * `diffuse-train mnist`: trains the class-conditional U-Net on the `generator` part of `splitMnist`
 * (5,000 digits that the judge never saw; `--data all` for all 10,000 as the first shipped models).
 */
export async function trainMnist(o: CommonOptions & MnistOptions): Promise<void> {
  await setUp(o.backend);
  const all = await loadMnist();
  const data = o.data === 'all' ? all : splitMnist(all).generator;
  const model = new UNet(mnistUNetConfig(o), { seed: o.seed });
  console.log(`U-Net: ${model.numParams} parameters; ${data.count} training digits`);
  const emaDecay = o.emaDecay ?? 0.999;
  await runRecipe<DiffusionBatch>(o, {
    label: 'mnist',
    lineEvery: 10,
    model,
    ema: new Ema(model.params, { decay: emaDecay, warmup: true }),
    data: shuffledSource(data, o.batchSize, Random.seed(o.seed).int(2 ** 31)),
    objective: await gradientsFor(
      model,
      {
        sampler: mnistNoise(o.noise ?? 'cosine'),
        condDropout: o.condDropout ?? 0.1,
        weighting: mnistWeighting(o.weighting ?? 'epsilon'),
      },
      o,
    ),
    optimizer: {
      warmupSteps: Math.min(100, Math.floor(o.steps / 10)),
      clipNorm: 1,
      minLearningRate: o.learningRate / 10,
    },
    checkpointEvery: 25,
    results: () => ({
      config: model.config,
      recipe: {
        data:
          o.data === 'all' ? 'all 10,000 digits' : 'generator part of splitMnist (5,000 digits)',
        weighting: o.weighting ?? 'epsilon',
        noise: o.noise ?? 'cosine',
        condDropout: o.condDropout ?? 0.1,
        emaDecay,
      },
    }),
  });
}

/**
 * The trials' common yardstick: the mean squared error of a U-Net's x0 estimate (converted from
 * whatever it predicts, `toX0`) on `ds` noised once at each logSNR (seeded), with each digit's own
 * label and with the null label. Comparable across predictions, weightings and preconditionings
 * (unlike their training losses); the gap between the two columns is how much the class labels
 * help, which classifier-free guidance needs.
 *
 * @example
 * const table = await heldOutX0Error(unet, splitMnist(await loadMnist()).heldOut, [-2, 0, 2]);
 */
export async function heldOutX0Error(
  model: NetworkDenoiser,
  ds: ArrayDataset,
  logSNRs: readonly number[],
  seed = 99,
  chunk = 100,
): Promise<{ logSNR: number; withLabel: number; nullLabel: number }[]> {
  const rng = Random.seed(seed);
  const px = ds.shape.reduce((a, b) => a * b, 1);
  const out: { logSNR: number; withLabel: number; nullLabel: number }[] = [];
  for (const l of logSNRs) {
    const level = vpLevelFromLogSNR(l);
    let withLabel = 0;
    let nullLabel = 0;
    for (let s = 0; s < ds.count; s += chunk) {
      const n = Math.min(chunk, ds.count - s);
      const x0 = tf.tensor(ds.x.subarray(s * px, (s + n) * px), [n, ...ds.shape]);
      const labels = tf.tensor1d(ds.labels.subarray(s, s + n), 'int32');
      const eps = rng.normal(x0.shape);
      const errs = tf.tidy(() => {
        const xt = addNoise(x0, eps, level);
        const err = (y: tf.Tensor) =>
          tf.sum(
            tf.square(
              tf.sub(
                toX0(model.predict(xt, level, { labels: y }), model.prediction, xt, level),
                x0,
              ),
            ),
          );
        return tf.stack([err(labels), err(tf.fill([n], model.nullLabel, 'int32'))]);
      });
      const [a, b] = await errs.data();
      withLabel += a!;
      nullLabel += b!;
      tf.dispose([x0, labels, eps, errs]);
    }
    out.push({
      logSNR: l,
      withLabel: withLabel / (ds.count * px),
      nullLabel: nullLabel / (ds.count * px),
    });
  }
  return out;
}

/** `diffuse-train probe-mnist`: prints `heldOutX0Error` of a saved U-Net on 250 held-out digits. */
export async function probeMnist(base: string, backend: CommonOptions['backend']): Promise<void> {
  await setUp(backend);
  const { loadModelFiles } = await import('@diffuse/models/node');
  const model = (await loadModelFiles(base)) as NetworkDenoiser;
  // every 4th held-out digit (250, every class in proportion): a quick yardstick on a busy machine
  const all = splitMnist(await loadMnist()).heldOut;
  const heldOut = subset(
    all,
    Array.from({ length: Math.ceil(all.count / 4) }, (_, i) => 4 * i),
  );
  const rows = await heldOutX0Error(model, heldOut, [-4, -2, 0, 2, 4]);
  console.log(`${base}: held-out x0 MSE (${heldOut.count} digits), with label / null label`);
  for (const r of rows)
    console.log(`  logSNR ${r.logSNR}: ${r.withLabel.toFixed(4)} / ${r.nullLabel.toFixed(4)}`);
  const mean = (k: 'withLabel' | 'nullLabel') => rows.reduce((a, r) => a + r[k], 0) / rows.length;
  console.log(`  mean: ${mean('withLabel').toFixed(4)} / ${mean('nullLabel').toFixed(4)}`);
  model.dispose();
}
