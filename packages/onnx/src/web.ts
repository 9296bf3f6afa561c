/**
 * `@diffuse/onnx/web`: Diffuse networks on ONNX Runtime Web (`onnxruntime-web`, an optional peer
 * dependency) in the browser, as an `AsyncDenoiser` that `sample`, `sampleSteps` and `invert` of
 * `@diffuse/samplers` run unchanged. `InferenceSession.run` is async-only in the browser (its main
 * thread may not block), hence `predictAsync`. Export (`exportOnnx`) works here too: nothing in this
 * entry uses a Node API.
 *
 * @packageDocumentation
 */

import {
  createAsyncDenoiser,
  type DenoiserInfo,
  type DenoiserSource,
  type OnnxAsyncDenoiser,
  type OrtModule,
} from './async-runtime.js';
import { OnnxError } from './errors.js';

export * from './portable.js';

/** onnxruntime-web's global settings used here (`ort.env.wasm`). */
interface OrtWebEnv {
  env?: {
    wasm?: {
      wasmPaths?: string | { wasm?: string | URL; mjs?: string | URL };
      numThreads?: number;
      proxy?: boolean;
    };
  };
}

/**
 * An onnxruntime-web execution provider: its name, or `{ name, ...options }` as
 * `InferenceSession.create` takes it (e.g. `{ name: 'webgpu', preferredLayout: 'NHWC' }`).
 */
export type WebExecutionProvider =
  | 'wasm'
  | 'cpu'
  | 'webgpu'
  | 'webnn'
  | 'webgl'
  | { readonly name: string; readonly [option: string]: unknown };

const providerName = (ep: WebExecutionProvider): string => (typeof ep === 'string' ? ep : ep.name);

/** Options of `onnxDenoiserWeb`. */
export interface OnnxWebOptions extends Partial<DenoiserInfo> {
  /**
   * Where the app serves onnxruntime-web's runtime files, set as `ort.env.wasm.wasmPaths`: a URL
   * prefix ending in `/` (holding `ort-wasm-simd-threaded.wasm`), or `{ wasm, mjs }` URLs (with Vite:
   * `import wasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url'`). Serve them from your app,
   * so the page works offline; when omitted, onnxruntime-web looks next to its own script.
   */
  wasmPaths?: string | { wasm?: string | URL; mjs?: string | URL };
  /**
   * wasm threads (`ort.env.wasm.numThreads`). Default: 1, or up to 4 when the page is
   * cross-origin isolated (threads need SharedArrayBuffer, i.e. COOP/COEP headers).
   */
  threads?: number;
  /**
   * Execution providers, in order of preference, passed to `InferenceSession.create` (kernels an
   * earlier one lacks run on a later one). Default `['wasm']`. With `'webgpu'` (e.g.
   * `['webgpu', 'wasm']`) the page needs `navigator.gpu` and an adapter; its runtime files are then
   * `ort-wasm-simd-threaded.asyncify.wasm` / `.mjs` (give those in `wasmPaths`).
   */
  executionProviders?: readonly WebExecutionProvider[];
  /**
   * The onnxruntime-web module, when the app imports it itself. Default: `onnxruntime-web/wasm` for
   * wasm only, `onnxruntime-web/webgpu` when the providers are webgpu and wasm, `onnxruntime-web/all`
   * otherwise (webnn, webgl).
   */
  ort?: OrtModule & OrtWebEnv;
}

/** The onnxruntime-web build that has `providers` (the smallest one). */
async function loadOrtWeb(providers: readonly string[]): Promise<OrtModule & OrtWebEnv> {
  const has = (allowed: string[]) => providers.every((p) => allowed.includes(p));
  try {
    // Literal specifiers, so the app's bundler includes the builds.
    const mod = has(['wasm', 'cpu'])
      ? await import('onnxruntime-web/wasm')
      : has(['webgpu', 'wasm', 'cpu'])
        ? await import('onnxruntime-web/webgpu')
        : await import('onnxruntime-web/all');
    return mod as unknown as OrtModule & OrtWebEnv;
  } catch (e) {
    throw new OnnxError(
      `cannot load onnxruntime-web (install the optional peer dependency: pnpm add onnxruntime-web@1.30.0): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

function defaultThreads(): number {
  const g = globalThis as {
    crossOriginIsolated?: boolean;
    navigator?: { hardwareConcurrency?: number };
  };
  if (!g.crossOriginIsolated) return 1;
  return Math.max(1, Math.min(4, g.navigator?.hardwareConcurrency ?? 1));
}

/**
 * A Diffuse denoiser on ONNX Runtime Web (wasm execution provider by default; WebGPU, WebNN or
 * WebGL with `executionProviders`), as an `AsyncDenoiser`.
 *
 * `source` is a tfjs MLP or U-Net (exported with `exportOnnx` in the page on first use), the bytes
 * of an `.onnx` file that `exportOnnx` wrote (its doc string carries the model config: prediction,
 * shape, classes, EDM sigma_data), or the URL of such a file (fetched). The graph's batch axis is
 * symbolic, so one session serves every batch size. The prediction is the tfjs model's: F(x; logSNR), or EDM's
 * c_skip x_ve + c_out F(c_in x_ve; c_noise) (Karras et al. 2022, Table 1). Outputs match the tfjs
 * model within 1e-4 of the output scale (float32 on both sides, different summation order).
 *
 * `ort.env.wasm` is global and read when the runtime first starts: set `wasmPaths` / `threads` on
 * the first call. A WebGPU session computes in float32 on the GPU; its outputs differ from the CPU's
 * by rounding (other summation orders), not by precision.
 *
 * @example
 * import { onnxDenoiserWeb } from '@diffuse/onnx/web';
 * import { sample } from '@diffuse/samplers';
 * const den = await onnxDenoiserWeb('/models/mlp.onnx', { wasmPaths: '/ort/' });
 * const x = await sample(den, { sampler: 'dpmpp_2m', steps: 20, batch: 256, seed: 1 });
 * await den.dispose();
 */
export async function onnxDenoiserWeb(
  source: DenoiserSource | URL | string,
  options: OnnxWebOptions = {},
): Promise<OnnxAsyncDenoiser> {
  const { wasmPaths, threads, executionProviders = ['wasm'], ort: given, ...info } = options;
  if (!Array.isArray(executionProviders) || executionProviders.length === 0) {
    throw new OnnxError('executionProviders must be a non-empty list, e.g. ["webgpu", "wasm"]');
  }
  const ort = given ?? (await loadOrtWeb(executionProviders.map(providerName)));
  const wasm = ort.env?.wasm;
  if (wasm) {
    if (wasmPaths !== undefined) wasm.wasmPaths = wasmPaths;
    wasm.numThreads = threads ?? defaultThreads();
    wasm.proxy = false;
  }
  let src: DenoiserSource;
  if (typeof source === 'string' || source instanceof URL) {
    let res: Response;
    try {
      res = await fetch(source);
    } catch (e) {
      throw new OnnxError(`fetching ${String(source)}: ${(e as Error).message}`, { cause: e });
    }
    if (!res.ok) throw new OnnxError(`fetching ${String(source)}: HTTP ${res.status}`);
    src = new Uint8Array(await res.arrayBuffer());
  } else {
    src = source;
  }
  return createAsyncDenoiser(
    ort,
    src,
    {
      executionProviders: [...executionProviders],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    },
    info,
  );
}
