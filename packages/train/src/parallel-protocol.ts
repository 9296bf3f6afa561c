/**
 * What the coordinator and the gradient workers of `ParallelGradients` say to each other, and the one
 * computation a worker does: the diffusion loss of its shard of the batch, from noise that the
 * coordinator drew for the whole batch, and its gradients.
 */

import { Random } from '@diffuse/backend';
import { denoisingLoss, type Reduction, type Weighting } from '@diffuse/losses';
import type { Conditioning, ModelConfig } from '@diffuse/models';
import type { Prediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { TrainableDenoiser } from './diffusion.js';
import type { ParamSlot, WireError } from './parallel-replica.js';

export { type ParamSlot, paramSlots, toWire, type WireError } from './parallel-replica.js';

/** The inputs of one worker's shard: rows [start, end) of the batch, with the coordinator's draws. */
export interface ShardInputs {
  /** x0 rows, flattened. */
  x: Float32Array;
  /** Shape of the shard's x0 ([rows, ...example shape]). */
  shape: number[];
  /** eps for these rows, flattened like x. */
  noise: Float32Array;
  /** lambda_i of these rows. */
  logSNR: Float64Array;
  /** The loss weight w(lambda_i) of these rows, already on the model's prediction space. */
  weights: Float32Array;
  /** Labels after conditioning dropout, for conditional models. */
  labels?: Int32Array;
}

/** Coordinator to worker. */
export type ToWorker =
  | {
      type: 'init';
      backend: string;
      config: ModelConfig;
      slots: ParamSlot[];
      /** The master weights, written by the coordinator before each step. */
      params: SharedArrayBuffer;
      /** This worker's gradients, written by the worker. */
      grads: SharedArrayBuffer;
      reduction: Reduction;
    }
  | { type: 'step'; id: number; shard: ShardInputs };

/** Worker to coordinator. */
export type FromWorker =
  | { type: 'ready'; backend: string }
  | { type: 'done'; id: number; loss: number }
  | { type: 'error'; id: number | null; error: WireError };

/** A weighting whose values were computed beforehand (by the coordinator, for the whole batch). */
export function givenWeighting(values: Float32Array, space: Prediction): Weighting {
  return {
    name: 'given',
    space,
    needsDensity: false,
    weight: (logSNR) => {
      if (logSNR.size !== values.length) {
        throw new RangeError(`given weights have ${values.length} entries, logSNR ${logSNR.size}`);
      }
      return tf.tensor(values, logSNR.shape, 'float32');
    },
  };
}

/** Unused: the shard's noise is given, so `denoisingLoss` draws nothing. */
const NO_DRAWS = Random.seed(0);

/**
 * The mean diffusion loss of a shard, the same expression `diffusionLoss` evaluates on the full
 * batch (`denoisingLoss` with the levels, noise and labels given), with per-example weights given.
 */
export function shardLoss(
  model: TrainableDenoiser,
  shard: ShardInputs,
  reduction: Reduction,
): tf.Scalar {
  return tf.tidy(() => {
    const x0 = tf.tensor(shard.x, shard.shape, 'float32');
    const noise = tf.tensor(shard.noise, shard.shape, 'float32');
    const cond: Conditioning | undefined =
      shard.labels !== undefined ? { labels: tf.tensor1d(shard.labels, 'int32') } : undefined;
    return tf.mean(
      denoisingLoss(model, x0, {
        rng: NO_DRAWS,
        sample: { logSNR: shard.logSNR },
        noise,
        weighting: givenWeighting(shard.weights, model.prediction),
        reduction,
        ...(cond !== undefined ? { cond } : {}),
      }),
    ) as tf.Scalar;
  });
}
