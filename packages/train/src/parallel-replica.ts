/**
 * A worker thread's side of a pool (`ParallelGradients`, `ParallelDenoiser`): the replica of the
 * coordinator's network on the worker's own tfjs engine, its weights read from the coordinator's
 * shared buffer, and the loop that answers messages one at a time and reports errors across the
 * thread boundary. Also the layout of that buffer, which both sides compute.
 */

import { type BackendName, initBackend } from '@diffuse/backend';
import { createModel, type Model, type ModelConfig, type NetworkDenoiser } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './errors.js';

/** Where parameter `name` lies in the shared buffers (offsets in float32 elements). */
export interface ParamSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
}

/** The parameter layout of a model: names, shapes and offsets into one flat float32 buffer. */
export function paramSlots(model: Pick<Model, 'namedParams'>): ParamSlot[] {
  let offset = 0;
  return model.namedParams().map(([name, v]) => {
    const slot = { name, shape: [...v.shape], offset, size: v.size };
    offset += v.size;
    return slot;
  });
}

/** Serialises an error for postMessage (DiffuseErrors keep their code). */
export function toWire(e: unknown): WireError {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(e) };
}

/** What a worker needs to rebuild the coordinator's network. */
export interface ReplicaSpec {
  backend: string;
  config: ModelConfig;
  slots: ParamSlot[];
}

/**
 * Initialises the worker's backend and builds the denoiser `spec.config` describes (uninitialised:
 * its weights come from the coordinator). Throws `TrainError` when the config is not a denoiser or
 * its parameters (names, shapes) differ from the coordinator's `spec.slots`; `purpose` ends the
 * first message ("ParallelGradients trains denoisers").
 */
export async function buildReplica(
  spec: ReplicaSpec,
  purpose: string,
): Promise<{ model: NetworkDenoiser; backend: string }> {
  const info = await initBackend(spec.backend as BackendName);
  const model = createModel(spec.config, { initialize: false });
  if (!('predict' in model)) {
    model.dispose();
    throw new TrainError(`a '${spec.config.kind}' is not a denoiser; ${purpose}`);
  }
  const mine = paramSlots(model);
  const same =
    mine.length === spec.slots.length &&
    mine.every(
      (s, i) =>
        s.name === spec.slots[i]!.name && tf.util.arraysEqual(s.shape, spec.slots[i]!.shape),
    );
  if (!same) {
    model.dispose();
    throw new TrainError(
      'the model built from the config has other parameters (names or shapes) than the coordinator sent',
    );
  }
  return { model: model as NetworkDenoiser, backend: info.name };
}

/**
 * Assigns the weights in the shared buffer `params` to `vars` (the replica's parameters, in the
 * slots' order). Each is a private copy: the coordinator may rewrite the buffer afterwards.
 */
export function assignWeights(
  vars: readonly tf.Variable[],
  slots: readonly ParamSlot[],
  params: Float32Array,
): void {
  slots.forEach((slot, i) => {
    const t = tf.tensor(params.slice(slot.offset, slot.offset + slot.size), slot.shape);
    vars[i]!.assign(t);
    t.dispose();
  });
}

/**
 * Answers the parent thread's messages on `port` with `handle`, one at a time and in order; an error
 * thrown by `handle` is posted as `{ type: 'error', id, error }` (the request's `id`, or null).
 */
export function serve<M extends { type: string; id?: number }>(
  port: import('node:worker_threads').MessagePort,
  handle: (m: M) => Promise<void>,
): void {
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (m: M) => {
    queue = queue.then(async () => {
      try {
        await handle(m);
      } catch (e) {
        port.postMessage({ type: 'error', id: m.id ?? null, error: toWire(e) });
      }
    });
  });
}
