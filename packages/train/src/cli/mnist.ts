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
} from '@diffuse/data';
import { minSNRWeighting, uniformTimeSampler, uniformWeighting } from '@diffuse/losses';
import { Ema, UNet, type UNetConfig, unetConfig } from '@diffuse/models';
import { CosineSchedule } from '@diffuse/schedules';
import type * as tf from '@tensorflow/tfjs-core';
import type { DiffusionBatch } from '../diffusion.js';
import type { BatchSource } from '../trainer.js';
import { type CommonOptions, gradientsFor, runRecipe, setUp } from './common.js';

/** The U-Net of the demo: small enough to train on 2 CPU cores within an hour. */
export function mnistUNetConfig(channels: number): UNetConfig {
  return unetConfig({
    imageShape: [28, 28, 1],
    channels,
    channelMults: [1, 2],
    numResBlocks: 1,
    attentionResolutions: [],
    groups: 8,
    embedDim: 64,
    numClasses: 10,
    prediction: 'epsilon',
  });
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

/** Loss weightings the `mnist` command offers (`--weighting`). */
export type MnistWeighting = 'epsilon' | 'min-snr';

export async function trainMnist(
  o: CommonOptions & { channels: number; weighting?: MnistWeighting },
): Promise<void> {
  await setUp(o.backend);
  const mnist = await loadMnist();
  const model = new UNet(mnistUNetConfig(o.channels), { seed: o.seed });
  console.log(`U-Net: ${model.numParams} parameters`);
  await runRecipe<DiffusionBatch>(o, {
    label: 'mnist',
    lineEvery: 10,
    model,
    ema: new Ema(model.params, { decay: 0.999, warmup: true }),
    data: shuffledSource(mnist, o.batchSize, Random.seed(o.seed).int(2 ** 31)),
    objective: await gradientsFor(
      model,
      {
        sampler: uniformTimeSampler(new CosineSchedule()),
        condDropout: 0.1,
        // 'min-snr': Min-SNR-5 (Hang et al. 2023), on epsilon min(SNR, 5) / SNR <= 1: shifts weight
        // from the nearly clean levels to the noisy ones where a digit's class and shape are decided.
        // (A v-space weighting, epsilon MSE times 1 + 1/SNR, is unbounded at logSNR -15 for an
        // epsilon network and made gradient norms of 30-200 in a trial.)
        weighting: o.weighting === 'min-snr' ? minSNRWeighting(5) : uniformWeighting('epsilon'),
      },
      o,
    ),
    optimizer: {
      warmupSteps: Math.min(100, Math.floor(o.steps / 10)),
      clipNorm: 1,
      minLearningRate: o.learningRate / 10,
    },
    checkpointEvery: 25,
    results: () => ({ config: model.config }),
  });
}
