/**
 * The benchmark page that runs in headless Chromium (`--browser`): the same models and the same timed
 * workloads as the Node suites, on webgl, webgpu, tfjs-wasm single-threaded (`wasm-1t`, with
 * `@diffuse/backend`'s SIMD kernels) and threaded (`wasm-threads`: tfjs-wasm's threaded build, whose
 * shared memory the SIMD kernels cannot import), and ONNX Runtime Web (`onnx-web`, inference only:
 * the network exported in the page by `@diffuse/onnx/web`). Bundled by tsup into
 * `dist/browser/page.global.js`; the Node side (`runner.ts`) serves it cross-origin isolated (wasm
 * threads need SharedArrayBuffer) and calls `globalThis.diffuseBench.run(job)`.
 */
import '@diffuse/backend/webgl';
import '@diffuse/backend/webgpu';
// Also registers tfjs-wasm's flags (WASM_HAS_MULTITHREAD_SUPPORT) before the backend starts.
import '@diffuse/backend/wasm';
import { initBackend } from '@diffuse/backend';
import { onnxDenoiserWeb } from '@diffuse/onnx/web';
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { timeForward, timeTrainStep } from '../measure.js';
import { createModel, type ModelName } from '../models.js';
import type { BackendSizes } from '../plan.js';
import type { BackendRecord, ThroughputRow, TrainingRow } from '../results.js';

/** What the page can run: tfjs backends, tfjs-wasm single-threaded or threaded, ONNX Runtime Web. */
export type BrowserBackendName = 'webgl' | 'webgpu' | 'wasm-1t' | 'wasm-threads' | 'onnx-web';

export interface BrowserJob {
  backend: BrowserBackendName;
  /** URL prefixes where the runner serves tfjs-wasm's and onnxruntime-web's .wasm (and .mjs) files. */
  tfjsWasmPaths: string;
  ortWasmPaths: string;
  models: ModelName[];
  suites: ('throughput' | 'training')[];
  sizes: BackendSizes;
  warmup: number;
  repeats: number;
  seed: number;
}

export interface BrowserResult {
  backend: BackendRecord;
  throughput: ThroughputRow[];
  training: TrainingRow[];
  errors: string[];
}

async function run(job: BrowserJob): Promise<BrowserResult> {
  const out: BrowserResult = {
    backend: { name: job.backend, environment: 'browser', available: false },
    throughput: [],
    training: [],
    errors: [],
  };
  const onWasm =
    job.backend === 'wasm-1t' || job.backend === 'wasm-threads' || job.backend === 'onnx-web';
  const ortThreads = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
  try {
    // tfjs-wasm picks its threaded build whenever the page is cross-origin isolated; the flag
    // chooses. ONNX Runtime Web's rows keep tfjs single-threaded (it only holds x and the output).
    if (onWasm) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', job.backend === 'wasm-threads');
    if (job.backend === 'wasm-threads') setThreadsCount(ortThreads);
    const info = await initBackend(onWasm ? 'wasm' : (job.backend as 'webgl' | 'webgpu'), {
      wasmPaths: job.tfjsWasmPaths,
    });
    // (read from the package this page initialised, not a second bundled copy)
    const wasmThreads = onWasm ? Math.max(1, getThreadsCount()) : info.threads;
    if (job.backend === 'wasm-threads' && wasmThreads < 2) {
      throw new Error(
        `tfjs-wasm's threaded build started ${wasmThreads} thread (initBackend says ${info.threads}) (crossOriginIsolated: ${globalThis.crossOriginIsolated}): its thread pool did not start in this bundled page`,
      );
    }
    out.backend = {
      name: job.backend,
      environment: 'browser',
      available: true,
      simd: info.simd,
      threads: job.backend === 'onnx-web' ? ortThreads : wasmThreads,
      float32: info.float32,
      simdKernels: info.simdKernels,
      browser: navigator.userAgent,
    };
  } catch (e) {
    out.backend.reason = (e as Error).message;
    return out;
  }
  const plan = { warmup: job.warmup, repeats: job.repeats, seed: job.seed };
  for (const name of job.models) {
    let model = createModel(name, job.seed);
    const base = {
      model: name,
      modelLabel: model.label,
      modelSource: model.source,
      params: model.params,
      backend: job.backend,
      environment: 'browser' as const,
    };
    try {
      let runtime: ThroughputRow['runtime'];
      if (job.backend === 'onnx-web') {
        const t0 = performance.now();
        const asyncDenoiser = await onnxDenoiserWeb(model.net, {
          wasmPaths: job.ortWasmPaths,
          threads: ortThreads,
        });
        const tfjs = model;
        model = {
          ...tfjs,
          label: `${tfjs.label}, exported to ONNX in the page`,
          asyncDenoiser,
          dispose: () => {
            void asyncDenoiser.dispose();
            tfjs.dispose();
          },
        };
        runtime = {
          name: 'onnxruntime-web',
          version: '1.30.0',
          threads: ortThreads,
          host: 'wasm',
          call: 'AsyncDenoiser (predictAsync), in the page',
          setupMs: performance.now() - t0,
        };
      }
      if (job.suites.includes('throughput')) {
        const batch = name === 'mlp' ? job.sizes.mlpBatch : job.sizes.unetBatch;
        const { stat, leaked } = await timeForward(model, batch, plan);
        out.throughput.push({
          ...base,
          batch,
          msPerCall: stat,
          samplesPerSecond: (batch * 1000) / stat.median,
          leakedTensors: leaked,
          modelBytes: 0,
          ...(runtime ? { runtime } : {}),
        });
      }
      if (job.suites.includes('training') && job.backend !== 'onnx-web') {
        const batch = name === 'mlp' ? job.sizes.mlpTrainBatch : job.sizes.unetTrainBatch;
        const { stat, leaked } = await timeTrainStep(model, batch, plan);
        out.training.push({
          ...base,
          batch,
          variant: 'default',
          ablation: false,
          msPerStep: stat,
          leakedTensors: leaked,
        });
      }
    } catch (e) {
      out.errors.push(`${name} on ${job.backend}: ${(e as Error).message}`);
    } finally {
      model.dispose();
    }
  }
  return out;
}

(globalThis as unknown as { diffuseBench: { run: typeof run } }).diffuseBench = { run };
