/**
 * What the coordinator and the workers of `ParallelDenoiser` say to each other: the replica's
 * start-up, weight updates, and one forward pass over a shard of rows whose prediction the worker
 * writes into the call's shared output buffer.
 */

import type { ModelConfig } from '@diffuse/models';
import type { ParamSlot, WireError } from './parallel-replica.js';

/** A tensor's values as they cross the thread boundary (a copy). */
export interface WireTensor {
  values: Float32Array | Int32Array | Uint8Array;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool';
}

/** A noise-level component (alpha or sigma): a number, or a tensor (one per example, or shared). */
export type WireScalar = number | WireTensor;

/** One value of the conditioning: a tensor (its rows when it is per example) or a plain value. */
export type WireCondValue = WireTensor | number | string | boolean;

/** The inputs of one worker's forward pass: rows [start, end) of the call's batch. */
export interface PredictShard {
  /** x_t rows, flattened. */
  x: Float32Array;
  /** Shape of the shard ([rows, ...example shape]). */
  shape: number[];
  alpha: WireScalar;
  sigma: WireScalar;
  /** Conditioning, per-example tensors cut to the shard's rows. */
  cond?: Record<string, WireCondValue>;
  /** The call's output, shaped like its whole x; the shard's prediction goes at `offset`. */
  out: SharedArrayBuffer;
  /** Where the shard starts in `out`, in float32 elements. */
  offset: number;
}

/** Coordinator to worker. */
export type ToDenoiserWorker =
  | {
      type: 'init';
      backend: string;
      config: ModelConfig;
      slots: ParamSlot[];
      /** The weights, written by the coordinator before `init` and each `weights` message. */
      params: SharedArrayBuffer;
    }
  | { type: 'weights'; id: number }
  | { type: 'predict'; id: number; shard: PredictShard };

/** Worker to coordinator. */
export type FromDenoiserWorker =
  | { type: 'ready'; backend: string }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number | null; error: WireError };
