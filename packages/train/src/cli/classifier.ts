/**
 * `diffuse-train mnist-classifier`: the small MNIST classifier that scores the U-Net's samples. It is
 * `@diffuse/models`' noise-conditional classifier with its MLP trunk on flattened images, trained on
 * clean digits (a fixed high logSNR), on 9,000 of the 10,000 digits; the other 1,000 measure its
 * accuracy. Also `evaluateMnistSamples`: sample each class from a trained U-Net and classify.
 *
 * `diffuse-train mnist-noisy-classifier`: the classifier that *guides* sampling (classifier guidance,
 * Dhariwal & Nichol 2021, sec. 4): the same network class with its conv trunk, trained on noisy digits
 * x_t = alpha x0 + sigma eps at every noise level of the U-Net's cosine logSNR schedule, so that
 * grad_x log p(y | x_t) means something all along the sampling path.
 */

import { writeFile } from 'node:fs/promises';
import { Random } from '@diffuse/backend';
import { type ArrayDataset, loadMnist, splitMnist } from '@diffuse/data';
import { classifierFreeGuidance, classifierGuidance, sampleClipping } from '@diffuse/guidance';
import { type LogSNRSampler, uniformTimeSampler } from '@diffuse/losses';
import {
  classifierConfig,
  type Denoiser,
  type ImageClassifier,
  loadModel,
  type NetworkDenoiser,
  NoiseConditionalClassifier,
} from '@diffuse/models';
import { loadModelFiles } from '@diffuse/models/node';
import { type SamplerName, sample } from '@diffuse/samplers';
import {
  addNoise,
  CosineSchedule,
  type NoiseLevel,
  type Scalar,
  vpLevelFromLogSNR,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { frechetDistance, type GaussianStats, gaussianStats } from '../metrics.js';
import { type CommonOptions, commandLine, runRecipe, setUp } from './common.js';
import { judgeAccuracy, judgeImages, loadJudge } from './judge.js';
import { shuffledSource } from './mnist.js';

/** The noise level the classifier sees clean digits at: logSNR = 12. */
export const CLEAN = {
  alpha: Math.sqrt(1 / (1 + Math.exp(-12))),
  sigma: Math.sqrt(1 / (1 + Math.exp(12))),
};

/**
 * A deterministic split of the data set: every 10th example is held out. Examples keep `shape`
 * (default: flattened to [pixels]).
 */
export function split(
  ds: ArrayDataset,
  shape?: readonly number[],
): { train: ArrayDataset; test: ArrayDataset } {
  const px = ds.shape.reduce((a, b) => a * b, 1);
  const pick = (keep: (i: number) => boolean): ArrayDataset => {
    const idx = Array.from({ length: ds.count }, (_, i) => i).filter(keep);
    const x = new Float32Array(idx.length * px);
    const labels = new Int32Array(idx.length);
    idx.forEach((j, i) => {
      x.set(ds.x.subarray(j * px, (j + 1) * px), i * px);
      labels[i] = ds.labels[j]!;
    });
    return { x, labels, count: idx.length, shape: [...(shape ?? [px])], numClasses: ds.numClasses };
  };
  return { train: pick((i) => i % 10 !== 0), test: pick((i) => i % 10 === 0) };
}

/**
 * Accuracy of `clf` on images x [n, ...] (reshaped to the classifier's input shape) with labels, at
 * noise level `level` (default: clean digits, `CLEAN`). The images are used as they are: noise them
 * first (`noisyAccuracy`) to measure a noise-conditional classifier at a noisy level.
 */
export async function accuracy(
  clf: NoiseConditionalClassifier,
  x: tf.Tensor,
  labels: Int32Array,
  level: NoiseLevel<Scalar> = CLEAN,
): Promise<number> {
  const pred = tf.tidy(() =>
    tf.argMax(clf.logits(tf.reshape(x, [x.shape[0]!, ...clf.config.inputShape]), level), 1),
  );
  const p = await pred.data();
  pred.dispose();
  let ok = 0;
  for (let i = 0; i < labels.length; i++) if (p[i] === labels[i]) ok++;
  return ok / labels.length;
}

export async function trainMnistClassifier(o: CommonOptions): Promise<void> {
  await setUp(o.backend);
  const { train, test } = split(await loadMnist());
  const clf = new NoiseConditionalClassifier(
    classifierConfig({ inputShape: [784], numClasses: 10, width: 256, depth: 2, embedDim: 32 }),
    { seed: o.seed },
  );
  const testX = tf.tensor2d(test.x, [test.count, 784]);
  try {
    await runRecipe<{ x: tf.Tensor; labels: tf.Tensor }>(o, {
      label: 'classifier',
      model: clf,
      data: shuffledSource(train, o.batchSize, o.seed + 1),
      objective: {
        loss: (b) =>
          tf.tidy(() => {
            const logits = clf.logits(b.x, CLEAN);
            return tf.losses.softmaxCrossEntropy(
              tf.oneHot(tf.cast(b.labels, 'int32'), 10),
              logits,
            ) as tf.Scalar;
          }),
      },
      optimizer: { warmupSteps: 50, clipNorm: 5 },
      evaluate: {
        every: 200,
        fn: async () => ({ testAccuracy: await accuracy(clf, testX, test.labels) }),
      },
      checkpointEvery: 200,
      record: ['command', 'steps'],
      results: async () => {
        const testAccuracy = await accuracy(clf, testX, test.labels);
        console.log(`test accuracy on 1000 held-out digits: ${testAccuracy}`);
        return { testAccuracy, heldOut: test.count };
      },
    });
  } finally {
    testX.dispose();
  }
}

/**
 * The noise levels at which `mnist-noisy-classifier` reports held-out accuracy (logSNR; 8 is nearly
 * clean, 0 is as much noise as signal, -4 is mostly noise).
 */
export const REPORT_LOGSNRS = [8, 4, 2, 0, -2, -4] as const;

/**
 * The cross-entropy of a noise-conditional classifier on noised data (Dhariwal & Nichol 2021,
 * sec. 4.1: "we train a classifier p_phi(y | x_t, t) on noisy images x_t"):
 *
 *     L = E_{lambda ~ p(lambda), eps ~ N(0, I)} [ -log p_phi(y | alpha_lambda x0 + sigma_lambda eps, lambda) ],
 *     alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda),
 *
 * with each example's logSNR lambda drawn by `sampler` (for the demo's classifier:
 * `uniformTimeSampler(new CosineSchedule())`, the U-Net's own training distribution) and its noise
 * from the trainer's seeded stream.
 *
 * @example
 * const loss = noisyClassifierLoss(clf, uniformTimeSampler(new CosineSchedule()));
 * const trainer = new Trainer({ params: clf.params, loss, data: shuffledSource(train, 64, 1), seed: 0 });
 */
export function noisyClassifierLoss(
  clf: Pick<NoiseConditionalClassifier, 'numClasses' | 'logits'>,
  sampler: LogSNRSampler,
): (batch: { x: tf.Tensor; labels: tf.Tensor }, rng: Random) => tf.Scalar {
  return (b, rng) => {
    const n = b.x.shape[0]!;
    const levels = Array.from(sampler.sample(n, rng).logSNR, vpLevelFromLogSNR);
    const noise = rng.normal(b.x.shape);
    try {
      return tf.tidy(() => {
        const perExample = [n, ...new Array<number>(b.x.rank - 1).fill(1)];
        const alpha = tf.tensor1d(levels.map((l) => l.alpha));
        const sigma = tf.tensor1d(levels.map((l) => l.sigma));
        const xt = addNoise(b.x, noise, {
          alpha: tf.reshape(alpha, perExample),
          sigma: tf.reshape(sigma, perExample),
        });
        const logits = clf.logits(xt, { alpha, sigma });
        return tf.losses.softmaxCrossEntropy(
          tf.oneHot(tf.cast(b.labels, 'int32'), clf.numClasses),
          logits,
        ) as tf.Scalar;
      });
    } finally {
      noise.dispose();
    }
  };
}

/**
 * Held-out accuracy of `clf` at each logSNR in `logSNRs`: every image is noised once at that level
 * with seeded noise, x_t = alpha x0 + sigma eps, and classified at the same level.
 *
 * @example
 * const table = await noisyAccuracy(clf, testX, test.labels, [8, 0, -4]); // { '8': 0.97, ... }
 */
export async function noisyAccuracy(
  clf: NoiseConditionalClassifier,
  x: tf.Tensor,
  labels: Int32Array,
  logSNRs: readonly number[],
  seed = 12345,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const rng = Random.seed(seed);
  for (const l of logSNRs) {
    const level = vpLevelFromLogSNR(l);
    const noise = rng.normal(x.shape);
    const xt = addNoise(x, noise, level);
    out[String(l)] = await accuracy(clf, xt, labels, level);
    tf.dispose([noise, xt]);
  }
  return out;
}

/**
 * The classifier `mnist-noisy-classifier` trains: the MLP trunk on flattened digits (width 256, depth
 * 3; on a shared 2-core machine a step of it costs ~45 ms of CPU against ~375 ms for the smallest conv
 * trunk, 8 channels) or the conv trunk (U-Net encoder at 28, 14 and 7 pixels with global pooling) on
 * [28, 28, 1] images.
 */
export function noisyMnistClassifierConfig(
  trunk: 'mlp' | 'conv',
  channels = 16,
): ReturnType<typeof classifierConfig> {
  return trunk === 'mlp'
    ? classifierConfig({ inputShape: [784], numClasses: 10, width: 256, depth: 3, embedDim: 64 })
    : classifierConfig({
        inputShape: [28, 28, 1],
        numClasses: 10,
        channels,
        // Three levels (28, 14, 7): the 7x7 level lets the receptive field span the whole digit.
        channelMults: [1, 2, 2],
        groups: 8,
        embedDim: 32,
      });
}

/** `diffuse-train mnist-noisy-classifier`: the guide of classifier guidance on MNIST. */
export async function trainNoisyMnistClassifier(
  o: CommonOptions & { channels: number; trunk: 'mlp' | 'conv' },
): Promise<void> {
  await setUp(o.backend);
  const config = noisyMnistClassifierConfig(o.trunk, o.channels);
  const { train, test } = split(await loadMnist(), config.inputShape);
  const clf = new NoiseConditionalClassifier(config, { seed: o.seed });
  console.log(`noise-conditional classifier (${o.trunk} trunk): ${clf.numParams} parameters`);
  const testX = tf.tensor(test.x, [test.count, ...config.inputShape]);
  // A fixed 500-digit slice for the periodic evaluation; the full 1,000 at the end.
  const evalX = tf.slice(testX, 0, 500);
  const evalLabels = test.labels.slice(0, 500);
  try {
    await runRecipe<{ x: tf.Tensor; labels: tf.Tensor }>(o, {
      label: 'noisy-classifier',
      lineEvery: 50,
      model: clf,
      data: shuffledSource(train, o.batchSize, o.seed + 1),
      objective: { loss: noisyClassifierLoss(clf, uniformTimeSampler(new CosineSchedule())) },
      optimizer: { warmupSteps: 50, clipNorm: 5, minLearningRate: o.learningRate / 10 },
      evaluate: {
        every: 200,
        fn: async () => {
          const acc = await noisyAccuracy(clf, evalX, evalLabels, [4, 0]);
          return { accLogSNR4: acc['4']!, accLogSNR0: acc['0']! };
        },
      },
      checkpointEvery: 100,
      results: async () => {
        const heldOut = await noisyAccuracy(clf, testX, test.labels, REPORT_LOGSNRS);
        const clean = await accuracy(clf, testX, test.labels, CLEAN);
        console.log(
          `held-out accuracy (1000 digits): clean (logSNR 12) ${clean}; ${Object.entries(heldOut)
            .map(([l, a]) => `logSNR ${l}: ${a}`)
            .join(', ')}`,
        );
        return {
          trainedOn:
            "MNIST x_t = alpha x0 + sigma eps, logSNR of uniform t under the cosine schedule in [-15, 15] (the U-Net's)",
          heldOut: test.count,
          testAccuracyClean: clean,
          testAccuracyByLogSNR: REPORT_LOGSNRS.map((l) => ({
            logSNR: l,
            accuracy: heldOut[String(l)],
          })),
        };
      },
    });
  } finally {
    tf.dispose([testX, evalX]);
  }
}

/** What `evaluateMnistSamples` finds in one set of samples. */
export interface SampleEvaluation {
  /** Fraction read by the judge as the class asked for (conditional samples only). */
  accuracy?: number;
  /** The same per digit 0..9. */
  perClass?: number[];
  /** Share of the samples the judge reads as each digit 0..9. */
  readAs: number[];
  /** Fréchet distance of the judge's features of the samples to those of held-out half A. */
  frechet: number;
  /** The samples [n, 28, 28, 1] in [-1, 1], row-major, and the class each was asked for (-1: none). */
  images: Float32Array;
  labels: Int32Array;
}

/**
 * Samples digits from a class-conditional U-Net (`perClass` of each digit, or with `unconditional`
 * 10 * `perClass` of the null class), has the judge read them, and measures the Fréchet distance
 * of their judge features (Gaussian fits, `frechetDistance`) to the reference `reference` (half A of
 * the held-out digits). The predicted x0 is clipped to [-1, 1] at every step (static thresholding, as
 * DDPM's sampler does): without it the x0 estimates of an epsilon-predicting network at the first,
 * nearly pure-noise steps (sigma/alpha up to 80) amplify its errors far outside the data range and
 * sampling never recovers. Samples are drawn in chunks of `chunk` (each with its own seed).
 */
export async function evaluateMnistSamples(
  model: Denoiser,
  judge: ImageClassifier,
  reference: GaussianStats,
  options: {
    perClass?: number;
    steps?: number;
    seed?: number;
    sampler?: SamplerName;
    unconditional?: boolean;
    chunk?: number;
  } = {},
): Promise<SampleEvaluation> {
  const per = options.perClass ?? 20;
  const n = 10 * per;
  const labels = new Int32Array(n).map((_, i) =>
    options.unconditional ? -1 : Math.floor(i / per),
  );
  const chunk = options.chunk ?? 100;
  const images = new Float32Array(n * 784);
  const classes = new Int32Array(n);
  const features = new Float32Array(n * judge.config.hidden);
  for (let s = 0; s < n; s += chunk) {
    const size = Math.min(chunk, n - s);
    const y = options.unconditional ? undefined : tf.tensor1d(labels.slice(s, s + size), 'int32');
    const x = await sample(sampleClipping(model), {
      sampler: options.sampler ?? 'dpmpp_2m',
      steps: options.steps ?? 25,
      shape: [size, 28, 28, 1],
      rng: Random.seed((options.seed ?? 7) + 1000 * (s / chunk)),
      ...(y ? { cond: { labels: y } } : {}),
    });
    const clipped = tf.clipByValue(x, -1, 1);
    const r = await judgeImages(judge, clipped);
    images.set(await clipped.data(), s * 784);
    classes.set(r.classes, s);
    features.set(r.features, s * r.dim);
    tf.dispose([x, clipped, ...(y ? [y] : [])]);
  }
  const readAs = new Array(10).fill(0);
  for (const c of classes) readAs[c]! += 1 / n;
  const frechet = frechetDistance(gaussianStats(features, judge.config.hidden), reference);
  if (options.unconditional) return { readAs, frechet, images, labels };
  const perClass = new Array(10).fill(0);
  for (let i = 0; i < n; i++) if (classes[i] === labels[i]) perClass[labels[i]!]++;
  return {
    accuracy: perClass.reduce((a, b) => a + b, 0) / n,
    perClass: perClass.map((c) => c / per),
    readAs,
    frechet,
    images,
    labels,
  };
}

/**
 * The Fréchet reference of `eval-mnist`: the judge's features of the held-out digits split in two
 * halves (alternate digits, so both hold every class in proportion). `reference` is half A, the
 * distance samples are measured against; `floor` is the distance of half B to half A, what two
 * samples of real digits of that size score (the goal: samples within 3x of it).
 */
export async function frechetReference(
  judge: ImageClassifier,
  heldOut: ArrayDataset,
): Promise<{ reference: GaussianStats; floor: number; halfSize: number }> {
  const x = tf.tensor4d(heldOut.x, [heldOut.count, 28, 28, 1]);
  const { features, dim } = await judgeImages(judge, x);
  x.dispose();
  const half = (parity: number) => {
    const rows = Array.from({ length: heldOut.count }, (_, i) => i).filter((i) => i % 2 === parity);
    const out = new Float32Array(rows.length * dim);
    rows.forEach((r, k) => {
      out.set(features.subarray(r * dim, (r + 1) * dim), k * dim);
    });
    return out;
  };
  const reference = gaussianStats(half(0), dim);
  const floor = frechetDistance(gaussianStats(half(1), dim), reference);
  return { reference, floor, halfSize: reference.count };
}

/** Loads a classifier saved by `trainMnistClassifier`. */
export async function loadClassifier(base: string): Promise<NoiseConditionalClassifier> {
  const { readFile } = await import('node:fs/promises');
  const weights = await readFile(`${base}.safetensors`);
  const config = JSON.parse(await readFile(`${base}.json`, 'utf8'));
  return loadModel({
    config,
    weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength),
  }) as NoiseConditionalClassifier;
}

/**
 * `diffuse-train eval-mnist`: the U-Net's samples read by the judge (`mnist-judge`, trained on
 * digits the U-Net never saw): class accuracy unguided, with classifier-free guidance at scale
 * `guidance`, and, given a noise-conditional classifier `guide`, with classifier guidance at scale
 * `guideScale` (default the same; the U-Net's null-class prediction shifted by
 * -sigma s grad_x log p(y | x_t), `classifierGuidance` of `@diffuse/guidance`; and its
 * class-conditional prediction shifted the same way); the null-class (unconditional) samples' spread over
 * the ten digits; and for each, the Fréchet distance of the judge's penultimate features to held-out
 * digits next to its floor (`frechetReference`). Results go to `sampleEvaluation` of
 * `<model>.metrics.json` (or `out`), one entry per sample set: runs of other `modes` with the same
 * judge, sample count and sampler add their entries to it.
 */
export async function evalMnist(o: {
  model: string;
  classifier: string;
  guide?: string;
  perClass: number;
  steps: number;
  guidance: number;
  /** Classifier guidance's scale (default `guidance`). */
  guideScale?: number;
  backend: CommonOptions['backend'];
  seed: number;
  out?: string;
  /**
   * Which sample sets to make (default all): unconditional, guidance1, guidance<s>,
   * classifierGuidance<g> (the null-class model guided by the classifier) and
   * conditionalClassifierGuidance<g> (the class-conditional model guided by it as well).
   */
  modes?: string[];
}): Promise<Record<string, unknown>> {
  await setUp(o.backend);
  const model = (await loadModelFiles(o.model)) as NetworkDenoiser;
  const judge = await loadJudge(o.classifier);
  const guide = o.guide !== undefined ? await loadClassifier(o.guide) : undefined;
  const { heldOut } = splitMnist(await loadMnist());
  const judgeAcc = await judgeAccuracy(judge, heldOut);
  const { reference, floor, halfSize } = await frechetReference(judge, heldOut);
  console.log(
    `judge ${o.classifier}: ${judgeAcc.accuracy} on ${heldOut.count} held-out digits; Fréchet floor (held-out half B vs half A, ${halfSize} each) ${floor.toFixed(3)}`,
  );
  const results: Record<string, unknown> = {
    command: commandLine(),
    model: o.model,
    judge: o.classifier,
    judgeHeldOutAccuracy: judgeAcc.accuracy,
    perClass: o.perClass,
    steps: o.steps,
    sampler: 'dpmpp_2m with x0 clipped to [-1, 1]',
    frechet: {
      features: `${judge.config.hidden} penultimate (ReLU) features of the judge`,
      reference: `held-out digits with even index in the held-out part (${halfSize})`,
      floor,
      floorIs: `held-out digits with odd index (${heldOut.count - halfSize}) against the reference`,
    },
  };
  const runs: [string, Denoiser, boolean][] = [
    ['unconditional', model, true],
    ['guidance1', model, false],
  ];
  if (o.guidance > 1 || guide) {
    runs.push([
      `guidance${o.guidance}`,
      classifierFreeGuidance(model, { guidanceScale: o.guidance }),
      false,
    ]);
  }
  if (guide) {
    const inputShape = guide.config.inputShape;
    const onImages = {
      numClasses: guide.numClasses,
      logits: (x: tf.Tensor, level: NoiseLevel<Scalar>) =>
        tf.tidy(() => guide.logits(tf.reshape(x, [x.shape[0]!, ...inputShape]), level)),
    };
    const g = o.guideScale ?? o.guidance;
    runs.push(
      [`classifierGuidance${g}`, classifierGuidance(model, onImages, { scale: g }), false],
      // Dhariwal & Nichol 2021, sec. 4 and table 4: a class-conditional model guided by the
      // classifier as well (`conditionDenoiser`: the U-Net gets the label too).
      [
        `conditionalClassifierGuidance${g}`,
        classifierGuidance(model, onImages, { scale: g, conditionDenoiser: true }),
        false,
      ],
    );
  }
  for (const [name, denoiser, unconditional] of runs) {
    if (o.modes !== undefined && !o.modes.includes(name)) continue;
    const t = Date.now();
    const r = await evaluateMnistSamples(denoiser, judge, reference, {
      perClass: o.perClass,
      steps: o.steps,
      seed: o.seed,
      unconditional,
    });
    const seconds = (Date.now() - t) / 1000;
    const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
    console.log(
      `${name}: ${r.accuracy !== undefined ? `read as asked ${pct(r.accuracy)} (per digit ${r.perClass!.map(pct).join(' ')}); ` : ''}read as ${r.readAs.map(pct).join(' ')}; Fréchet ${r.frechet.toFixed(3)} (${(r.frechet / floor).toFixed(1)}x floor) in ${seconds} s`,
    );
    results[name] = {
      ...(r.accuracy !== undefined ? { accuracy: r.accuracy, perClass: r.perClass } : {}),
      readAs: r.readAs,
      frechet: r.frechet,
      frechetOverFloor: r.frechet / floor,
      seconds,
    };
  }
  // One entry per sample set, so that runs of different `--modes` (e.g. in parallel processes) add
  // up in one file; the judge, the sample count and the sampler must match.
  const metricsPath = o.out ?? `${o.model}.metrics.json`;
  const key = 'sampleEvaluation';
  const { readFile } = await import('node:fs/promises');
  let existing: Record<string, unknown> = {};
  try {
    existing = JSON.parse(await readFile(metricsPath, 'utf8'));
  } catch {
    /* no training metrics yet */
  }
  const before = existing[key] as Record<string, unknown> | undefined;
  const same =
    before !== undefined &&
    before.judge === results.judge &&
    before.perClass === results.perClass &&
    before.steps === results.steps &&
    before.sampler === results.sampler;
  const merged = same ? { ...before, ...results, command: undefined } : results;
  if (same) {
    merged.commands = [
      ...((before.commands as string[] | undefined) ?? [before.command as string]),
      results.command,
    ];
    delete merged.command;
  }
  await writeFile(metricsPath, `${JSON.stringify({ ...existing, [key]: merged }, null, 2)}\n`);
  console.log(`wrote ${metricsPath}`);
  model.dispose();
  judge.dispose();
  guide?.dispose();
  return results;
}

export { loadModelFiles };
