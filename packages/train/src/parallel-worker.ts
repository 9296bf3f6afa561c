/**
 * A gradient worker of `ParallelGradients` (a Node worker thread with its own tfjs engine and wasm
 * instance). On `init` it builds a replica of the model from its config; on each `step` it copies the
 * master weights from the shared buffer, computes the loss of its shard and its gradients, and writes
 * them into its own shared gradient buffer.
 */

import { parentPort } from 'node:worker_threads';
import type { Reduction } from '@diffuse/losses';
import type { NetworkDenoiser } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './errors.js';
import {
  type FromWorker,
  type ParamSlot,
  type ShardInputs,
  shardLoss,
  type ToWorker,
} from './parallel-protocol.js';
import { assignWeights, buildReplica, serve } from './parallel-replica.js';

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

function post(m: FromWorker): void {
  port!.postMessage(m);
}

async function init(m: Extract<ToWorker, { type: 'init' }>): Promise<void> {
  const { model, backend } = await buildReplica(m, 'ParallelGradients trains denoisers');
  state = {
    model,
    slots: m.slots,
    params: new Float32Array(m.params),
    grads: new Float32Array(m.grads),
    reduction: m.reduction,
  };
  post({ type: 'ready', backend });
}

async function step(id: number, shard: ShardInputs): Promise<void> {
  const s = state;
  if (s === null) throw new TrainError('the worker got a step before init');
  const vars = s.model.params;
  // the coordinator rewrites the shared buffer before each step
  assignWeights(vars, s.slots, s.params);
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

serve<ToWorker>(port, (m) => (m.type === 'init' ? init(m) : step(m.id, m.shard)));
