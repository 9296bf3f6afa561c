/**
 * Running exported networks with ONNX Runtime (onnxruntime-node, an optional peer dependency)
 * behind the same interfaces as the tfjs models, so any sampler and any guidance runs unchanged.
 *
 * ONNX Runtime's `run` is asynchronous while `Denoiser.predict` is synchronous; the sessions live
 * in a worker thread that the main thread calls synchronously (`synckit`: postMessage plus
 * `Atomics.wait`). Each call reads the input tensor back from tfjs once and uploads the result: the
 * model runs outside tfjs, so that readback is inherent (about 0.1 ms for a 4096 x 2 batch).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Conditioning,
  type Denoiser,
  edmPreconditioned,
  logSNRTensor,
  type Mlp,
  type NoiseConditionalNetwork,
  type UNet,
} from '@diffuse/models';
import type { NoiseLevel, Prediction, Scalar } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { createSyncFn } from 'synckit';
import { OnnxError } from './errors.js';
import { exportOnnx } from './export.js';
import type { WorkerRequest, WorkerResponse } from './worker.js';

type Call = (req: WorkerRequest) => WorkerResponse;
let call: Call | undefined;

function workerPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // Built package: dist/worker.js beside dist/index.js. From sources (tests): ../dist/worker.js.
  for (const p of [join(here, 'worker.js'), join(here, '..', 'dist', 'worker.js')]) {
    if (existsSync(p)) return p;
  }
  throw new OnnxError(`cannot find the ONNX worker script near ${here}; build @diffuse/onnx first`);
}

function worker(): Call {
  call ??= createSyncFn(workerPath(), { timeout: 600_000 }) as unknown as Call;
  return call;
}

function check(res: WorkerResponse, what: string): Extract<WorkerResponse, { ok: true }> {
  if (!res.ok) {
    const hint = /Cannot find (module|package) 'onnxruntime-node'/.test(res.error)
      ? ' (install the optional peer dependency: pnpm add onnxruntime-node@1.30.0)'
      : '';
    throw new OnnxError(`${what}: ${res.error}${hint}`);
  }
  return res;
}

/** Options of `OnnxNetwork`. */
export interface OnnxOptions {
  /** ONNX Runtime intra-op threads (default: 2). */
  threads?: number;
}

let nextId = 0;

/**
 * A Diffuse MLP or U-Net running on ONNX Runtime: the same raw network F(x; noise, labels) as the
 * tfjs model's `apply`, exported from it once (symbolic batch: one session serves every batch size).
 *
 * @example
 * const onnxNet = new OnnxNetwork(unet, { threads: 2 });
 * const eps = onnxNet.apply(x, noise, { labels });
 * onnxNet.dispose();
 */
export class OnnxNetwork implements NoiseConditionalNetwork {
  readonly shape: readonly number[];
  readonly numClasses: number | undefined;
  private readonly key = `net${nextId++}`;
  private loaded = false;
  private readonly threads: number;

  constructor(
    private readonly net: Mlp | UNet,
    options: OnnxOptions = {},
  ) {
    this.shape = net.shape;
    this.numClasses = net.numClasses;
    this.threads = options.threads ?? 2;
  }

  /** Exports the network and builds its session, once. */
  private session(): string {
    if (!this.loaded) {
      const bytes = exportOnnx(this.net);
      check(
        worker()({ type: 'load', key: this.key, bytes, threads: this.threads }),
        'loading the ONNX model',
      );
      this.loaded = true;
    }
    return this.key;
  }

  /** F(x; noise, labels) on ONNX Runtime; `noise` is per example, [batch]. */
  apply(x: tf.Tensor, noise: tf.Tensor, cond?: Conditioning): tf.Tensor {
    const batch = x.shape[0]!;
    const key = this.session();
    const feeds: Extract<WorkerRequest, { type: 'run' }>['feeds'] = [
      { name: 'x', type: 'float32', data: x.dataSync() as Float32Array, dims: x.shape },
      { name: 'noise', type: 'float32', data: noise.dataSync() as Float32Array, dims: [batch] },
    ];
    if ((this.numClasses ?? 0) > 0) {
      const labels = cond?.labels;
      const data =
        labels === undefined
          ? new Int32Array(batch).fill(this.numClasses!) // the null class: unconditional
          : Int32Array.from(labels.dataSync());
      feeds.push({ name: 'labels', type: 'int32', data, dims: [batch] });
    }
    const res = check(worker()({ type: 'run', key, feeds }), 'running the ONNX model');
    return tf.tensor(res.data!, res.dims!, 'float32');
  }

  /** Releases the ONNX Runtime session of this network (the tfjs model is untouched). */
  dispose(): void {
    if (this.loaded) worker()({ type: 'release', key: this.key });
    this.loaded = false;
  }
}

/**
 * The `Denoiser` of a Diffuse MLP or U-Net, computed by ONNX Runtime: the same prediction as
 * `net.predict` (F(x; logSNR), or EDM's c_skip x + c_out F(c_in x; c_noise) when the network was
 * configured with EDM preconditioning), usable by every sampler and guidance wrapper.
 *
 * @example
 * import { sample } from '@diffuse/samplers';
 * const fast = onnxDenoiser(mlp);
 * const x = await sample(fast, { sampler: 'dpmpp_2m', steps: 20, shape: [4096, 2], seed: 1 });
 * fast.dispose();
 */
export function onnxDenoiser(
  net: Mlp | UNet,
  options: OnnxOptions = {},
): Denoiser & { dispose(): void } {
  const onnxNet = new OnnxNetwork(net, options);
  const pre = net.config.preconditioning;
  const dispose = () => onnxNet.dispose();
  if (pre)
    return Object.assign(edmPreconditioned(onnxNet, { sigmaData: pre.sigmaData }), { dispose });
  const prediction: Prediction = net.prediction;
  return {
    prediction,
    shape: net.shape,
    numClasses: net.numClasses,
    predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor {
      return tf.tidy(() => onnxNet.apply(x, logSNRTensor(level, x.shape[0]!), cond));
    },
    dispose,
  };
}
