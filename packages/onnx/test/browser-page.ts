/**
 * The page the browser test loads (bundled with esbuild, served from 127.0.0.1): runs a Node-exported
 * MLP on onnxruntime-web through `sample`, exports a network inside the page and checks it against
 * tfjs in the page, and times a model call on both runtimes.
 */
import { initBackend, Random } from '@diffuse/backend';
import { createModel, type Mlp, mlpConfig } from '@diffuse/models';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { onnxDenoiserWeb } from '../src/web.js';

export interface PageInput {
  /** Sampling with the served file. */
  noise: number[];
  shape: [number, number];
  labels: number[];
  steps: number;
  /** The timed MLP. */
  timing: { width: number; depth: number; batch: number; calls: number };
}

export interface PageOutput {
  backend: string;
  samples: number[];
  crossOriginIsolated: boolean;
  inPage: { maxErr: number; scale: number };
  leaked: number;
  ms: { onnx: number; tfjs: number; width: number; depth: number; batch: number };
}

function randomize(net: { params: tf.Variable[] }, seed: number): void {
  const rng = Random.seed(seed);
  for (const p of net.params) {
    const v = tf.tidy(() => tf.mul(rng.normal(p.shape), 0.2));
    p.assign(v);
    v.dispose();
  }
}

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

async function msPerCall(fn: () => Promise<void>, calls: number): Promise<number> {
  for (let k = 0; k < 2; k++) await fn();
  const t0 = performance.now();
  for (let k = 0; k < calls; k++) await fn();
  return (performance.now() - t0) / calls;
}

async function run(input: PageInput): Promise<PageOutput> {
  const backend = await initBackend('wasm', { wasmPaths: '/tfwasm/' });
  const before = tf.memory().numTensors;

  // 1. A file exported in Node, fetched from the app, sampled with dpmpp_2m.
  const den = await onnxDenoiserWeb('/mlp.onnx', {
    wasmPaths: { wasm: '/ort/ort-wasm-simd-threaded.wasm', mjs: '/ort/ort-wasm-simd-threaded.mjs' },
  });
  const noise = tf.tensor2d(input.noise, input.shape);
  const labels = tf.tensor1d(input.labels, 'int32');
  const x = await sample(den, {
    sampler: 'dpmpp_2m',
    steps: input.steps,
    noise,
    cond: { labels },
  });
  const samples = Array.from(await x.data());
  tf.dispose([x, noise, labels]);
  await den.dispose();

  // 2. Export inside the page (no Node API) and compare with the tfjs model in the page.
  const small = createModel(mlpConfig({ dim: 2, width: 32, depth: 2 }), { seed: 3 }) as Mlp;
  randomize(small, 4);
  const inPageDen = await onnxDenoiserWeb(small);
  const xs = Random.seed(5).normal([16, 2]);
  const level = { alpha: 0.8, sigma: 0.6 };
  const ref = small.predict(xs, level);
  const got = await inPageDen.predictAsync(xs, level);
  const inPage = await maxDiff(ref, got);
  tf.dispose([xs, ref, got]);
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

(globalThis as unknown as { diffuseOnnxTest: typeof run }).diffuseOnnxTest = run;
document.body.dataset.ready = 'true';
