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

/** Renderer names of software rasterisers (Chromium's SwiftShader, Mesa's llvmpipe / softpipe). */
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render driver/i;

/**
 * Whether a WebGPU adapter is a software fallback: `GPUAdapterInfo.isFallbackAdapter` (Chrome 137+),
 * or the older `GPUAdapter.isFallbackAdapter`.
 *
 * @example
 * isFallbackAdapter({ info: { isFallbackAdapter: true } }); // true
 */
export function isFallbackAdapter(adapter: unknown): boolean {
  const a = adapter as { isFallbackAdapter?: boolean; info?: { isFallbackAdapter?: boolean } };
  return a?.info?.isFallbackAdapter === true || a?.isFallbackAdapter === true;
}

/**
 * The unmasked renderer of a WebGL context (`WEBGL_debug_renderer_info`), or its masked
 * `RENDERER` when the extension is absent.
 */
function webglRenderer(gl: WebGLRenderingContext | WebGL2RenderingContext): string {
  const ext = gl.getExtension('WEBGL_debug_renderer_info') as {
    UNMASKED_RENDERER_WEBGL: number;
  } | null;
  return String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) ?? '');
}

/**
 * Whether a GPU renderer name is a software rasteriser (so `auto` prefers wasm over it).
 *
 * @example
 * isSoftwareRenderer('ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)), SwiftShader driver)'); // true
 */
export function isSoftwareRenderer(renderer: string): boolean {
  return SOFTWARE_RENDERER.test(renderer);
}

/**
 * Why `name` cannot run here, or null when it may (checked before loading anything). Under `auto`
 * (`pickingBest`) a GPU backend that would run in software is skipped too: SwiftShader's WebGPU
 * fallback adapter and WebGL are 10-60x slower than wasm SIMD on the same CPU (measured in headless
 * Chromium: a 512x512 matMul takes ~15 ms on wasm, ~200 on WebGL, ~970 on WebGPU), and that adapter's
 * buffer limits make a 28x28 U-Net fail. Naming the backend explicitly still runs it.
 */
async function precheck(name: BackendName, pickingBest: boolean): Promise<string | null> {
  const env = environment();
  if (name === 'webgpu') {
    if (env === 'node') return 'WebGPU needs a browser; in Node use wasm or cpu';
    const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } })
      .navigator?.gpu;
    if (gpu === undefined)
      return 'navigator.gpu is undefined (WebGPU is not enabled in this browser)';
    let adapter: unknown;
    try {
      adapter = await gpu.requestAdapter();
    } catch (e) {
      return `navigator.gpu.requestAdapter() failed: ${(e as Error).message}`;
    }
    if (adapter === null) return 'navigator.gpu.requestAdapter() found no adapter';
    if (pickingBest && isFallbackAdapter(adapter)) {
      return 'the only WebGPU adapter is a software fallback (no GPU), slower than wasm; ask for webgpu by name to use it';
    }
  }
  if (name === 'webgl') {
    if (env === 'node') return 'WebGL needs a browser; in Node use wasm or cpu';
    const canvas =
      typeof OffscreenCanvas !== 'undefined'
        ? new OffscreenCanvas(1, 1)
        : (globalThis as { document?: Document }).document?.createElement('canvas');
    if (canvas === undefined) return 'no canvas to create a WebGL context on';
    const gl = (canvas.getContext('webgl2') ?? canvas.getContext('webgl')) as
      | WebGLRenderingContext
      | WebGL2RenderingContext
      | null;
    if (gl === null) return 'the browser could not create a WebGL context';
    const renderer = webglRenderer(gl);
    if (pickingBest && isSoftwareRenderer(renderer)) {
      return `WebGL renders in software (${renderer}), slower than wasm; ask for webgl by name to use it`;
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
async function activate(
  name: BackendName,
  options: InitBackendOptions,
  pickingBest: boolean,
): Promise<void> {
  const reason = await precheck(name, pickingBest);
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
 * the first that initialises, skipping a GPU backend that would run in software (WebGPU's fallback
 * adapter, WebGL on SwiftShader or llvmpipe: slower than wasm; `skipped` says so). Naming a backend that cannot run here throws a
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
      await activate(name, options, kind === 'auto');
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
