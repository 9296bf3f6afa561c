/**
 * The backend picker: switches tfjs between webgpu, webgl, wasm and cpu through `initBackend`,
 * shows which one runs and its capabilities, and the measured milliseconds per step of whatever
 * the page last ran (a sampler step or a training step).
 */
// The four tfjs backends the picker offers (each entry adds its package to the bundle).
import '@diffuse/backend/cpu';
import '@diffuse/backend/wasm'; // (also registers WASM_HAS_MULTITHREAD_SUPPORT, set below)
import '@diffuse/backend/webgl';
import '@diffuse/backend/webgpu';
import { type BackendInfo, type BackendName, initBackend } from '@diffuse/backend';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import * as tf from '@tensorflow/tfjs-core';

const WASM_PATHS = {
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
};

// tfjs-wasm runs single-threaded here even when the page is cross-origin isolated: its threaded
// build binds a shared memory, which Diffuse's SIMD kernels (conv2d, GroupNorm) cannot import, and
// its pthread workers fail to start from this minified bundle ("e is not defined" in the worker).
// Measured on the shipped U-Net at batch 32, XNNPACK's conv2d per thread is no faster than those
// kernels for inference; the second core goes to ONNX Runtime Web instead (see ort.ts).
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

let current: BackendInfo | undefined;
/** Work is serialised so a backend switch never happens in the middle of a step. */
let queue: Promise<unknown> = Promise.resolve();

/** Runs `job` after every job queued before it (the page's one lane for tensor work). */
export function exclusive<T>(job: () => Promise<T>): Promise<T> {
  const run = queue.then(job, job);
  queue = run.catch(() => undefined);
  return run;
}

/**
 * A backend can initialise and still fail at its first real kernel (a WebGPU fallback adapter with
 * tiny buffer limits, a WebGL context without float textures): run a small matMul and read it back.
 */
async function smokeTest(name: string): Promise<void> {
  try {
    const y = tf.tidy(() => tf.matMul(tf.ones([4, 8]), tf.ones([8, 2])));
    const v = await y.data();
    y.dispose();
    if (v[0] !== 8) throw new Error(`a 4x8 by 8x2 matMul of ones gave ${v[0]}, not 8`);
  } catch (e) {
    throw new Error(
      `${name} initialised but failed its first computation: ${(e as Error).message}`,
    );
  }
}

/** The backend now running. */
export function activeBackend(): BackendInfo | undefined {
  return current;
}

/** Switches to `name` (or the best available for `auto`), updating the picker; errors are shown, not thrown. */
export async function switchBackend(name: BackendName | 'auto'): Promise<BackendInfo | undefined> {
  return exclusive(async () => {
    const select = $<HTMLSelectElement>('backend-select');
    const error = $('backend-error');
    error.textContent = '';
    try {
      const info = await initBackend(name, { wasmPaths: WASM_PATHS });
      await smokeTest(info.name);
      current = info;
    } catch (e) {
      error.textContent = (e as Error).message;
      if (current === undefined) current = await initBackend('auto', { wasmPaths: WASM_PATHS });
      else await initBackend(current.name, { wasmPaths: WASM_PATHS });
    }
    select.value = current.name;
    $('backend-active').textContent = current.name;
    const caps = [current.float32 ? 'float32' : 'float16'];
    if (current.name === 'wasm')
      caps.push(
        current.simd ? 'SIMD' : 'no SIMD',
        `${current.threads} thread(s)`,
        ...(current.simdKernels ? ['Diffuse SIMD kernels'] : []),
      );
    $('backend-caps').textContent = `(${caps.join(', ')})`;
    $('ms-per-step').textContent = '–';
    document.body.dataset.backend = current.name;
    return current;
  });
}

/** Last measurement per (backend, kind of step), for the comparison line under the picker. */
const history = new Map<string, number>();

/** Shows a measured time per step and what the step was. */
export function reportStepTime(ms: number, what: string): void {
  const backend = current?.name ?? '?';
  history.set(`${what} on ${backend}`, ms);
  const line = $('backend-times');
  if (line) {
    line.textContent = [...history.entries()]
      .map(([k, v]) => `${k}: ${v.toFixed(v < 10 ? 2 : 1)} ms`)
      .join(' · ');
  }
  const el = $('ms-per-step');
  el.textContent = ms.toFixed(ms < 10 ? 2 : 1);
  el.title = what;
  el.dataset.what = what;
  const label = $('ms-per-step-what');
  if (label) label.textContent = `(${what}, ${current?.name ?? '?'})`;
}

/** Wires the picker's select element. */
export function mountBackendPicker(onSwitched: (info: BackendInfo) => void): void {
  const select = $<HTMLSelectElement>('backend-select');
  select.addEventListener('change', async () => {
    const info = await switchBackend(select.value as BackendName);
    if (info) onSwitched(info);
  });
}
