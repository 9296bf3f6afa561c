/**
 * Throughput: ms per model call and samples/s for the MLP denoiser and the U-Net on each Node
 * runtime (tfjs wasm and cpu, and ONNX Runtime through `@diffuse/onnx`); a whole sampling run on top,
 * split into time inside the model and the sampler's own time per step, with live tensors and backend
 * memory at every model call.
 */
import * as tf from '@tensorflow/tfjs-core';
import { recordBackend, useBackend } from '../backends.js';
import { predictOnce, timeForward } from '../measure.js';
import { type BenchModel, createModel, MODEL_NAMES, type ModelName } from '../models.js';
import {
  ONNX_CALLS,
  ONNX_RUNTIME,
  onnxAsyncBenchModel,
  onnxAvailability,
  onnxBenchModel,
  onnxLabel,
} from '../onnx.js';
import { sizesFor } from '../plan.js';
import type { BackendRecord, RuntimeRecord, ThroughputRow, ThroughputSuite } from '../results.js';
import { measureSampling, samplingAvailable } from '../sampling.js';
import { type SuiteContext, since } from '../suite.js';
import { WORKERS_BACKEND, workersBenchModel } from '../workers.js';

export const MODELS: ModelName[] = MODEL_NAMES;

export async function runThroughput(ctx: SuiteContext): Promise<ThroughputSuite> {
  const t0 = performance.now();
  const { plan, progress } = ctx;
  const rows: ThroughputRow[] = [];
  const notes: string[] = [];
  let missingRuntime = 0;
  const openRuntime = async (backend: string, c: SuiteContext) => {
    const r = await openBackend(backend, c, notes);
    if (r === 'not-installed') missingRuntime++;
    return r === 'not-installed' ? null : r;
  };
  const sampler = await samplingAvailable();
  if (!sampler.ok) notes.push(`sampling runs skipped: ${sampler.reason}`);
  progress.plan(plan.backends.length * MODELS.length * (sampler.ok ? 2 : 1));
  for (const backend of plan.backends) {
    const runtime = await openRuntime(backend, ctx);
    if (runtime === null) {
      for (let i = 0; i < MODELS.length * (sampler.ok ? 2 : 1); i++) progress.tick();
      continue;
    }
    const sizes = sizesFor(plan, backend);
    for (const name of MODELS) {
      const batch = name === 'mlp' ? sizes.mlpBatch : sizes.unetBatch;
      progress.status(`throughput: ${name} on ${backend}`);
      const tfModel = createModel(name, plan.seed);
      let model: BenchModel = tfModel;
      try {
        const modelBytes = tf.memory().numBytes;
        let setupMs: number | undefined;
        if (runtime.wrap) {
          model = await runtime.wrap(tfModel);
          setupMs = await prime(model, batch);
        }
        const { stat, leaked } = await timeForward(model, batch, plan, () =>
          progress.status(`throughput: ${name} forward on ${backend} (batch ${batch})`),
        );
        progress.tick();
        const row: ThroughputRow = {
          model: name,
          modelLabel: model.label,
          modelSource: model.source,
          params: model.params,
          backend,
          environment: 'node',
          batch,
          msPerCall: stat,
          samplesPerSecond: (batch * 1000) / stat.median,
          leakedTensors: leaked,
          modelBytes,
          rssBytes: process.memoryUsage().rss,
          ...(runtime.record ? { runtime: { ...runtime.record, setupMs: setupMs! } } : {}),
        };
        if (sampler.ok && (backend !== 'cpu' || plan.preset === 'full')) {
          progress.status(`throughput: ${name} sampling on ${backend}`);
          row.sampling = await measureSampling(model, batch, plan.samplingSteps, ctx);
          progress.tick();
        } else if (sampler.ok) {
          progress.tick();
          const skip = 'cpu: no sampling runs outside --full (25-35x slower than wasm)';
          if (!notes.includes(skip)) notes.push(skip);
        }
        rows.push(row);
      } catch (e) {
        notes.push(`${name} on ${backend} failed: ${(e as Error).message}`);
      } finally {
        if (model !== tfModel) model.dispose();
        tfModel.dispose();
      }
    }
  }
  const expected = plan.backends.length * MODELS.length - missingRuntime * MODELS.length;
  const status =
    plan.backends.length === 0
      ? 'skipped'
      : rows.length === 0
        ? 'failed'
        : rows.length < expected || !sampler.ok
          ? 'partial'
          : 'ok';
  return { status, notes, durationMs: since(t0), rows };
}

/** A Node runtime ready to measure: tfjs' backend as is, or ONNX Runtime wrapping the tfjs network. */
interface OpenRuntime {
  /** Replaces the tfjs denoiser by the runtime's (absent for tfjs backends). */
  wrap?: (m: BenchModel) => Promise<BenchModel>;
  /** What the rows record about the runtime (absent for tfjs backends). */
  record?: Omit<RuntimeRecord, 'setupMs'>;
}

/**
 * Initialises `backend` and records it. Null when it is unavailable (a note says why);
 * 'not-installed' when it is an optional runtime that is not installed (a note says so; the suite's
 * status does not count it as a failure).
 */
export async function openBackend(
  backend: string,
  ctx: SuiteContext,
  notes: string[],
): Promise<OpenRuntime | null | 'not-installed'> {
  if (backend === 'wasm' || backend === 'cpu') {
    const rec = await useBackend(backend);
    recordBackend(ctx.backends, rec);
    if (!rec.available) {
      notes.push(`${backend}: unavailable (${rec.reason})`);
      return null;
    }
    return {};
  }
  if (backend === WORKERS_BACKEND) {
    // the workers run tfjs-wasm; the main thread (the sampler's tensors) too
    const rec = await useBackend('wasm');
    recordBackend(ctx.backends, rec);
    if (!rec.available) {
      notes.push(`${backend}: unavailable (wasm: ${rec.reason})`);
      return null;
    }
    return { wrap: (m) => workersBenchModel(m) };
  }
  if (backend !== 'onnx' && backend !== 'onnx-async') return null;
  const ort = onnxAvailability();
  const rec: BackendRecord = { name: backend, environment: 'node', available: ort.ok };
  if (!ort.ok) {
    rec.reason = ort.reason;
    recordBackend(ctx.backends, rec);
    notes.push(`${backend}: ${ort.reason}; install it with: pnpm add ${ONNX_RUNTIME}@1.30.0`);
    return 'not-installed';
  }
  rec.threads = ort.threads;
  recordBackend(ctx.backends, rec);
  // The samplers' own tensor work (and the denoiser's input/output tensors) stays on tfjs: wasm.
  const tfSide = await useBackend('wasm');
  if (!tfSide.available) {
    const cpu = await useBackend('cpu');
    recordBackend(ctx.backends, cpu);
  }
  const hostNote = `${backend}: ${onnxLabel(ort, backend)}; the sampler's tensors live on tfjs-${tf.getBackend()}`;
  if (!notes.includes(hostNote)) notes.push(hostNote);
  return {
    wrap: async (m) =>
      backend === 'onnx' ? onnxBenchModel(m, ort.threads) : onnxAsyncBenchModel(m, ort.threads),
    record: {
      name: ONNX_RUNTIME,
      version: ort.version,
      threads: ort.threads,
      host: tf.getBackend(),
      call: ONNX_CALLS[backend],
    },
  };
}

/**
 * One untimed call at `batch` (the ONNX export of that batch size and the session are built on the
 * first call); returns its milliseconds.
 */
async function prime(model: BenchModel, batch: number): Promise<number> {
  const t0 = performance.now();
  const x = tf.zeros([batch, ...model.dataShape]);
  try {
    tf.dispose(await predictOnce(model, x, { alpha: 0.8, sigma: 0.6 }));
  } finally {
    x.dispose();
  }
  return performance.now() - t0;
}
