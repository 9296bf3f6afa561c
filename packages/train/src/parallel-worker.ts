/**
 * A gradient worker of `ParallelGradients` (a Node worker thread with its own tfjs engine and wasm
 * instance). On `init` it builds a replica of the model from its config; on each `step` it copies the
 * master weights from the shared buffer, computes the loss of its shard and its gradients, and writes
 * them into its own shared gradient buffer.
 */

import { parentPort } from 'node:worker_threads';
import { type BackendName, initBackend } from '@diffuse/backend';
import type { Reduction } from '@diffuse/losses';
import { createModel, type NetworkDenoiser } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './errors.js';
import {
  type FromWorker,
  type ParamSlot,
  paramSlots,
  type ShardInputs,
  shardLoss,
  type ToWorker,
  toWire,
} from './parallel-protocol.js';

interface State {
  model: NetworkDenoiser;
  slots: ParamSlot[];
  params: Float32Array;
  grads: Float32Array;
  reduction: Reduction;
}

const port = parentPort;
if (port === null) throw new Error('parallel-worker.js must run in a worker thread');

let state: State | null = null;
/** Messages are handled one at a time, in order. */
let queue: Promise<void> = Promise.resolve();

function post(m: FromWorker): void {
  port!.postMessage(m);
}

async function init(m: Extract<ToWorker, { type: 'init' }>): Promise<void> {
  const info = await initBackend(m.backend as BackendName);
  const model = createModel(m.config, { initialize: false });
  if (!('predict' in model)) {
    model.dispose();
    throw new TrainError(
      `a '${m.config.kind}' is not a denoiser; ParallelGradients trains denoisers`,
    );
  }
  const mine = paramSlots(model);
  const same =
    mine.length === m.slots.length &&
    mine.every(
      (s, i) => s.name === m.slots[i]!.name && tf.util.arraysEqual(s.shape, m.slots[i]!.shape),
    );
  if (!same) {
    model.dispose();
    throw new TrainError(
      'the model built from the config has other parameters (names or shapes) than the coordinator sent',
    );
  }
  state = {
    model: model as NetworkDenoiser,
    slots: m.slots,
    params: new Float32Array(m.params),
    grads: new Float32Array(m.grads),
    reduction: m.reduction,
  };
  post({ type: 'ready', backend: info.name });
}

async function step(id: number, shard: ShardInputs): Promise<void> {
  const s = state;
  if (s === null) throw new TrainError('the worker got a step before init');
  const vars = s.model.params;
  s.slots.forEach((slot, i) => {
    // a private copy: the coordinator rewrites the shared buffer for the next step
    const t = tf.tensor(s.params.slice(slot.offset, slot.offset + slot.size), slot.shape);
    vars[i]!.assign(t);
    t.dispose();
  });
  const { value, grads } = tf.variableGrads(() => shardLoss(s.model, shard, s.reduction), vars);
  try {
    const loss = (await value.data())[0]!;
    for (let i = 0; i < vars.length; i++) {
      const g = grads[vars[i]!.name];
      if (g === undefined) {
        throw new TrainError(`the loss does not depend on parameter ${s.slots[i]!.name}`);
      }
      s.grads.set(await g.data<'float32'>(), s.slots[i]!.offset);
    }
    post({ type: 'done', id, loss });
  } finally {
    tf.dispose([value, ...Object.values(grads)]);
  }
}

port.on('message', (m: ToWorker) => {
  queue = queue.then(async () => {
    try {
      if (m.type === 'init') await init(m);
      else await step(m.id, m.shard);
    } catch (e) {
      post({ type: 'error', id: m.type === 'step' ? m.id : null, error: toWire(e) });
    }
  });
});
