/**
 * Choosing and initialising the tfjs backend.
 *
 * Backend packages are optional peer dependencies, found through `./packages.ts`: a bundle holds
 * only the ones its app enabled (`import '@diffuse/backend/webgl'`), and Node imports an installed
 * one on first use (so Node never loads WebGL or WebGPU code).
 */
import * as tf from '@tensorflow/tfjs-core';
import './gradients.js';
import { BackendUnavailableError } from './errors.js';
import { type BackendName, isNode, loadBackendPackage } from './packages.js';
import { compileSimdKernels, setSimdKernelsEnabled, simdKernels } from './simd/index.js';
import { installWasmKernelFixes } from './wasm-kernels.js';

export type { BackendName } from './packages.js';
/** A backend name, or `auto` for the best one available here. */
export type BackendKind = BackendName | 'auto';

/** What was chosen, and what it can do: for apps to display and for tests to branch on. */
export interface BackendInfo {
  /** The backend now active in tfjs. */
  name: BackendName;
  /** What was asked for. */
  requested: BackendKind;
  /** Where we are running. */
  environment: 'node' | 'browser';
  /** WebAssembly SIMD in use (wasm only; false elsewhere). */
  simd: boolean;
  /** Threads used by the backend's kernels (wasm: its pool size; 1 when single-threaded). */
  threads: number;
  /**
   * Diffuse's own WebAssembly SIMD kernels (GroupNorm, Adam, stride-1 conv2d and its gradients,
   * matMul) are bound to this backend: wasm with a non-shared memory and wasm SIMD (false for
   * tfjs-wasm's threaded build, and on every other backend). When false those kernels take their
   * slower paths, with the same results.
   */
  simdKernels: boolean;
  /** Whether the backend computes and stores float32 (WebGL may fall back to float16). */
  float32: boolean;
  /** Backends tried before this one under `auto`, with the reason each was skipped. */
  skipped: { name: BackendName; reason: string }[];
}

/** Options for `initBackend`. */
export interface InitBackendOptions {
  /**
   * Where the browser finds the wasm binaries: a URL prefix, or one URL per file. With Vite:
   * `import simd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url'` (and the
   * same for `tfjs-backend-wasm.wasm` and `tfjs-backend-wasm-threaded-simd.wasm`). Optional in Node.
   */
  wasmPaths?: string | Record<string, string>;
}

/** The order `auto` tries backends in. */
export const AUTO_ORDER: Record<'node' | 'browser', BackendName[]> = {
  node: ['wasm', 'cpu'],
  browser: ['webgpu', 'webgl', 'wasm', 'cpu'],
};

export { isNode } from './packages.js';

function environment(): 'node' | 'browser' {
  return isNode() ? 'node' : 'browser';
}

/** Why `name` cannot run here, or null when it may (checked before loading anything). */
async function precheck(name: BackendName): Promise<string | null> {
  const env = environment();
  if (name === 'webgpu') {
    if (env === 'node') return 'WebGPU needs a browser; in Node use wasm or cpu';
    const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } })
      .navigator?.gpu;
    if (gpu === undefined)
      return 'navigator.gpu is undefined (WebGPU is not enabled in this browser)';
    try {
      if ((await gpu.requestAdapter()) === null)
        return 'navigator.gpu.requestAdapter() found no adapter';
    } catch (e) {
      return `navigator.gpu.requestAdapter() failed: ${(e as Error).message}`;
    }
  }
  if (name === 'webgl') {
    if (env === 'node') return 'WebGL needs a browser; in Node use wasm or cpu';
    const canvas =
      typeof OffscreenCanvas !== 'undefined'
        ? new OffscreenCanvas(1, 1)
        : (globalThis as { document?: Document }).document?.createElement('canvas');
    if (canvas === undefined) return 'no canvas to create a WebGL context on';
    if (canvas.getContext('webgl2') === null && canvas.getContext('webgl') === null) {
      return 'the browser could not create a WebGL context';
    }
  }
  if (name === 'wasm' && typeof WebAssembly === 'undefined') {
    return 'WebAssembly is not available in this runtime';
  }
  return null;
}

async function loadPackage(name: BackendName, options: InitBackendOptions): Promise<void> {
  const pkg = await loadBackendPackage(name);
  if (name === 'wasm') {
    if (options.wasmPaths !== undefined) pkg.setWasmPaths?.(options.wasmPaths);
    installWasmKernelFixes();
    await compileSimdKernels(); // async: browsers refuse to compile > 4 KB synchronously
  }
}

async function capabilities(
  name: BackendName,
): Promise<Pick<BackendInfo, 'simd' | 'threads' | 'float32' | 'simdKernels'>> {
  if (name === 'wasm') {
    const wasm = await loadBackendPackage('wasm');
    const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    setSimdKernelsEnabled(tf.backend(), true); // (re)binds them, also after useSimdKernels(false)
    return {
      simd,
      threads: Math.max(1, wasm.getThreadsCount?.() ?? 1),
      float32: true,
      simdKernels: simdKernels(tf.backend()) !== null,
    };
  }
  if (name === 'webgl') {
    return {
      simd: false,
      threads: 1,
      float32: tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED'),
      simdKernels: false,
    };
  }
  return { simd: false, threads: 1, float32: true, simdKernels: false };
}

/** Loads and activates one backend, or throws `BackendUnavailableError` saying why not. */
async function activate(name: BackendName, options: InitBackendOptions): Promise<void> {
  const reason = await precheck(name);
  if (reason !== null) throw new BackendUnavailableError(name, reason);
  try {
    await loadPackage(name, options);
  } catch (e) {
    if (e instanceof BackendUnavailableError) throw e;
    throw new BackendUnavailableError(name, `loading its package failed: ${(e as Error).message}`, {
      cause: e,
    });
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } catch (e) {
    throw new BackendUnavailableError(name, `initialisation threw: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (!ok || tf.getBackend() !== name) {
    throw new BackendUnavailableError(
      name,
      'tfjs could not initialise it (its factory failed; the console warning has the detail)',
    );
  }
  silenceNodeBanner();
}

/**
 * tfjs-backend-cpu prints a banner advertising `@tensorflow/tfjs-node` on its first tensor in Node
 * (`MathBackendCPU.write` while `firstUse` is set). Diffuse runs on wasm in Node on purpose, and that
 * package cannot be installed from the npm registry alone, so the banner only misleads: mark the cpu
 * backend as used (nothing else reads `firstUse`). Backends initialised later are not touched.
 */
function silenceNodeBanner(): void {
  if (!isNode()) return;
  // the engine's registry of initialised backends (findBackend would initialise one)
  const { registry } = tf.engine() as unknown as {
    registry: Record<string, { firstUse?: boolean }>;
  };
  const cpu = registry.cpu;
  if (cpu !== undefined && cpu.firstUse === true) cpu.firstUse = false;
}

/**
 * Initialises a tensor backend and makes it the active one.
 *
 * `auto` picks, in Node, wasm (then cpu); in the browser, webgpu, then webgl, then wasm, then cpu:
 * the first that initialises. Naming a backend that cannot run here throws a
 * `BackendUnavailableError` whose message says which and why.
 *
 * @example
 * import { initBackend } from '@diffuse/backend';
 * const info = await initBackend('auto');
 * console.log(`running on ${info.name} (simd: ${info.simd}, threads: ${info.threads})`);
 */
export async function initBackend(
  kind: BackendKind = 'auto',
  options: InitBackendOptions = {},
): Promise<BackendInfo> {
  const valid: BackendKind[] = ['auto', 'wasm', 'webgl', 'webgpu', 'cpu'];
  if (!valid.includes(kind)) {
    throw new BackendUnavailableError(
      String(kind),
      `unknown backend; use one of ${valid.join(', ')}`,
    );
  }
  const env = environment();
  const candidates = kind === 'auto' ? AUTO_ORDER[env] : [kind];
  const skipped: BackendInfo['skipped'] = [];
  for (const name of candidates) {
    try {
      await activate(name, options);
      return { name, requested: kind, environment: env, ...(await capabilities(name)), skipped };
    } catch (e) {
      if (kind !== 'auto') throw e;
      skipped.push({ name, reason: e instanceof BackendUnavailableError ? e.reason : String(e) });
    }
  }
  throw new BackendUnavailableError(
    'auto',
    `no backend initialised: ${skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`,
  );
}
