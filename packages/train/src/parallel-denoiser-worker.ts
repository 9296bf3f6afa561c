/**
 * A worker of `ParallelDenoiser` (a Node worker thread with its own tfjs engine and wasm instance).
 * On `init` it builds a replica of the network from its config and loads the weights from the shared
 * buffer; `weights` reloads them; `predict` runs the replica's forward pass on a shard of rows and
 * writes the prediction into the call's shared output buffer.
 */

import { parentPort } from 'node:worker_threads';
import type { Conditioning, NetworkDenoiser } from '@diffuse/models';
import type { Scalar } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './errors.js';
import type {
  FromDenoiserWorker,
  PredictShard,
  ToDenoiserWorker,
  WireCondValue,
  WireScalar,
  WireTensor,
} from './parallel-denoiser-protocol.js';
import { assignWeights, buildReplica, type ParamSlot, serve } from './parallel-replica.js';

interface State {
  model: NetworkDenoiser;
  slots: ParamSlot[];
  params: Float32Array;
}

const port = parentPort;
if (port === null) throw new Error('parallel-denoiser-worker.js must run in a worker thread');

let state: State | null = null;

function post(m: FromDenoiserWorker): void {
  port!.postMessage(m);
}

function ready(): State {
  if (state === null) throw new TrainError('the worker got a request before init');
  return state;
}

const toTensor = (w: WireTensor) => tf.tensor(w.values, w.shape, w.dtype);
const toScalar = (v: WireScalar): Scalar => (typeof v === 'number' ? v : toTensor(v));

function toCond(c: Record<string, WireCondValue>): Conditioning {
  const out: Conditioning = {};
  for (const [k, v] of Object.entries(c)) out[k] = typeof v === 'object' ? toTensor(v) : v;
  return out;
}

async function predict(id: number, shard: PredictShard): Promise<void> {
  const { model } = ready();
  const y = tf.tidy(() =>
    model.predict(
      tf.tensor(shard.x, shard.shape, 'float32'),
      { alpha: toScalar(shard.alpha), sigma: toScalar(shard.sigma) },
      shard.cond !== undefined ? toCond(shard.cond) : undefined,
    ),
  );
  try {
    if (y.size !== shard.x.length) {
      throw new TrainError(
        `the replica returned shape [${y.shape.join(', ')}] for x of shape [${shard.shape.join(', ')}]`,
      );
    }
    new Float32Array(shard.out, 4 * shard.offset, y.size).set(await y.data<'float32'>());
  } finally {
    y.dispose();
  }
  post({ type: 'done', id });
}

serve<ToDenoiserWorker>(port, async (m) => {
  if (m.type === 'init') {
    const { model, backend } = await buildReplica(m, 'ParallelDenoiser runs denoisers');
    state = { model, slots: m.slots, params: new Float32Array(m.params) };
    assignWeights(model.params, m.slots, state.params);
    post({ type: 'ready', backend });
  } else if (m.type === 'weights') {
    const s = ready();
    assignWeights(s.model.params, s.slots, s.params);
    post({ type: 'done', id: m.id });
  } else await predict(m.id, m.shard);
});
