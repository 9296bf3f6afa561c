/**
 * The page the browser test loads (bundled with esbuild, served from 127.0.0.1): runs a Node-exported
 * MLP (symbolic batch) on onnxruntime-web through `sample` at two batch sizes with one session,
 * exports a network inside the page and checks it against tfjs in the page, times a model call on
 * both runtimes, (a second entry) samples on the WebGPU execution provider when the page has a
 * WebGPU adapter, and (a third) runs Node-exported diffusers checkpoints (`exportDiffusersOnnx`).
 */
import '@diffuse/backend/wasm';
import { initBackend, Random } from '@diffuse/backend';
import { type AsyncDenoiser, createModel, type Mlp, mlpConfig } from '@diffuse/models';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-web';
import { onnxDenoiserWeb } from '../src/web.js';
import { randomize } from './fixtures.js';

/** One sampling run with the served file. */
export interface SampleRun {
  noise: number[];
  shape: [number, number];
  labels: number[];
}

export interface PageInput {
  /** Sampling runs with the served file, one per batch size, all on one session. */
  runs: SampleRun[];
  steps: number;
  /** The timed MLP. */
  timing: { width: number; depth: number; batch: number; calls: number };
}

export interface PageOutput {
  backend: string;
  /** Per run. */
  samples: number[][];
  crossOriginIsolated: boolean;
  inPage: { maxErr: number; scale: number };
  leaked: number;
  ms: { onnx: number; tfjs: number; width: number; depth: number; batch: number };
}

/** onnxruntime-web's wasm build's runtime files, served by the app. */
const WASM_FILES = {
  wasm: '/ort/ort-wasm-simd-threaded.wasm',
  mjs: '/ort/ort-wasm-simd-threaded.mjs',
};

async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<{ maxErr: number; scale: number }> {
  const av = await a.data();
  const bv = await b.data();
  let maxErr = 0;
  let scale = 0;
  for (let i = 0; i < av.length; i++) {
    scale = Math.max(scale, Math.abs(av[i]!));
    maxErr = Math.max(maxErr, Math.abs(av[i]! - bv[i]!));
  }
  return { maxErr, scale };
}

async function msPerCall(fn: () => Promise<void>, calls: number, warmup = 2): Promise<number> {
  for (let k = 0; k < warmup; k++) await fn();
  const t0 = performance.now();
  for (let k = 0; k < calls; k++) await fn();
  return (performance.now() - t0) / calls;
}

async function run(input: PageInput): Promise<PageOutput> {
  const backend = await initBackend('wasm', { wasmPaths: '/tfwasm/' });
  const before = tf.memory().numTensors;

  // 1. A file exported in Node, fetched from the app, sampled with dpmpp_2m at every batch size of
  // `input.runs` by one denoiser (one session: the file's batch axis is symbolic).
  const den = await onnxDenoiserWeb('/mlp.onnx', { wasmPaths: WASM_FILES });
  const samples = await sampleRuns(den, input);
  await den.dispose();

  // 2. Export inside the page (no Node API) and compare with the tfjs model in the page, at two
  // batch sizes.
  const small = createModel(mlpConfig({ dim: 2, width: 32, depth: 2 }), { seed: 3 }) as Mlp;
  randomize(small, 4);
  const inPageDen = await onnxDenoiserWeb(small);
  const level = { alpha: 0.8, sigma: 0.6 };
  const inPage = { maxErr: 0, scale: Number.POSITIVE_INFINITY };
  for (const b of [16, 1]) {
    const xs = Random.seed(5 + b).normal([b, 2]);
    const ref = small.predict(xs, level);
    const got = await inPageDen.predictAsync(xs, level);
    const d = await maxDiff(ref, got);
    inPage.maxErr = Math.max(inPage.maxErr, d.maxErr);
    inPage.scale = Math.min(inPage.scale, d.scale);
    tf.dispose([xs, ref, got]);
  }
  await inPageDen.dispose();
  small.dispose();
  const leaked = tf.memory().numTensors - before;

  // 3. ms per model call: onnxruntime-web (wasm, one thread) vs tfjs-wasm, same network and batch.
  const { width, depth, batch, calls } = input.timing;
  const big = createModel(mlpConfig({ dim: 2, width, depth }), { seed: 6 }) as Mlp;
  randomize(big, 7);
  const fast = await onnxDenoiserWeb(big);
  const xb = Random.seed(8).normal([batch, 2]);
  const onnx = await msPerCall(async () => {
    (await fast.predictAsync(xb, level)).dispose();
  }, calls);
  const tfjs = await msPerCall(async () => {
    const y = big.predict(xb, level);
    await y.data();
    y.dispose();
  }, calls);
  xb.dispose();
  await fast.dispose();
  big.dispose();

  return {
    backend: backend.name,
    samples,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    inPage,
    leaked,
    ms: { onnx, tfjs, width, depth, batch },
  };
}

/** dpmpp_2m with `den` for each run of `input` (one batch size each). */
async function sampleRuns(den: AsyncDenoiser, input: PageInput): Promise<number[][]> {
  const out: number[][] = [];
  for (const r of input.runs) {
    const noise = tf.tensor2d(r.noise, r.shape);
    const labels = tf.tensor1d(r.labels, 'int32');
    const x = await sample(den, {
      sampler: 'dpmpp_2m',
      steps: input.steps,
      noise,
      cond: { labels },
    });
    out.push(Array.from(await x.data()));
    tf.dispose([x, noise, labels]);
  }
  return out;
}

export type WebGpuOutput =
  | { available: false; reason: string }
  | {
      available: true;
      adapter: string;
      samples: number[][];
      leaked: number;
      ms: { webgpu: number; wasm: number; width: number; depth: number; batch: number };
    };

/** What the page's WebGPU adapter is, or why there is none. */
async function webGpuAdapter(): Promise<{ adapter: string } | { reason: string }> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (gpu === undefined) {
    return { reason: 'navigator.gpu is undefined (WebGPU is not exposed to this page)' };
  }
  let adapter: { info?: { vendor?: string; architecture?: string; isFallbackAdapter?: boolean } };
  try {
    adapter = (await gpu.requestAdapter()) as typeof adapter;
  } catch (e) {
    return { reason: `navigator.gpu.requestAdapter() threw: ${(e as Error).message}` };
  }
  if (!adapter)
    return { reason: 'navigator.gpu.requestAdapter() returned null (no WebGPU adapter)' };
  const i = adapter.info ?? {};
  return {
    adapter: `${i.vendor ?? '?'} ${i.architecture ?? '?'}${i.isFallbackAdapter ? ' (fallback adapter)' : ''}`,
  };
}

/**
 * The served file sampled on onnxruntime-web's WebGPU execution provider alone (no wasm fallback:
 * session creation fails if WebGPU cannot start), and ms per model call against the wasm one.
 */
async function runWebGpu(input: PageInput): Promise<WebGpuOutput> {
  const found = await webGpuAdapter();
  if ('reason' in found) return { available: false, reason: found.reason };
  await initBackend('wasm', { wasmPaths: '/tfwasm/' });
  const before = tf.memory().numTensors;
  // The WebGPU build of onnxruntime-web runs on the asyncify wasm files.
  const asyncify = {
    wasm: '/ort/ort-wasm-simd-threaded.asyncify.wasm',
    mjs: '/ort/ort-wasm-simd-threaded.asyncify.mjs',
  };
  const den = await onnxDenoiserWeb('/mlp.onnx', {
    executionProviders: ['webgpu'],
    wasmPaths: asyncify,
  });
  const samples = await sampleRuns(den, input);
  await den.dispose();
  const leaked = tf.memory().numTensors - before;

  // SwiftShader's software WebGPU takes seconds per call at batch 1024: time batch 256, 2 calls.
  const { width, depth, calls } = input.timing;
  const batch = Math.min(256, input.timing.batch);
  const big = createModel(mlpConfig({ dim: 2, width, depth }), { seed: 6 }) as Mlp;
  randomize(big, 7);
  const level = { alpha: 0.8, sigma: 0.6 };
  const xb = Random.seed(8).normal([batch, 2]);
  const ms = { webgpu: 0, wasm: 0, width, depth, batch };
  for (const ep of ['webgpu', 'wasm'] as const) {
    // Each provider list loads its own build: webgpu's (asyncify files) or the wasm one.
    const d = await onnxDenoiserWeb(big, {
      executionProviders: [ep],
      wasmPaths: ep === 'webgpu' ? asyncify : WASM_FILES,
    });
    ms[ep] = await msPerCall(
      async () => {
        (await d.predictAsync(xb, level)).dispose();
      },
      Math.min(calls, 2),
      1,
    );
    await d.dispose();
  }
  xb.dispose();
  big.dispose();
  return { available: true, adapter: found.adapter, samples, leaked, ms };
}

/** One Node-exported diffusers model (a served file) and its inputs, by diffusers' input names. */
export interface DiffusersPageRun {
  url: string;
  feeds: Record<string, { data: number[]; shape: number[]; dtype: 'float32' | 'int32' }>;
  output: string;
}

/**
 * Each file on onnxruntime-web's wasm execution provider (one thread), straight through
 * `InferenceSession` with diffusers' input names: what a page does with `exportDiffusersOnnx` files.
 */
async function runDiffusers(runs: DiffusersPageRun[]): Promise<number[][]> {
  ort.env.wasm.wasmPaths = WASM_FILES;
  ort.env.wasm.numThreads = 1;
  const out: number[][] = [];
  for (const r of runs) {
    const bytes = new Uint8Array(await (await fetch(r.url)).arrayBuffer());
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, f] of Object.entries(r.feeds)) {
      feeds[name] =
        f.dtype === 'int32'
          ? new ort.Tensor('int32', Int32Array.from(f.data), f.shape)
          : new ort.Tensor('float32', Float32Array.from(f.data), f.shape);
    }
    const result = await session.run(feeds);
    out.push(Array.from(result[r.output]!.data as Float32Array));
    await session.release();
  }
  return out;
}

const g = globalThis as unknown as {
  diffuseOnnxTest: typeof run;
  diffuseOnnxWebGpu: typeof runWebGpu;
  diffuseOnnxDiffusers: typeof runDiffusers;
};
g.diffuseOnnxTest = run;
g.diffuseOnnxWebGpu = runWebGpu;
g.diffuseOnnxDiffusers = runDiffusers;
document.body.dataset.ready = 'true';
