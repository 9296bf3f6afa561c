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
  /** The onnxruntime-web module, when the app imports it itself (default: `import('onnxruntime-web/wasm')`). */
  ort?: OrtModule & OrtWebEnv;
}

async function loadOrtWeb(): Promise<OrtModule & OrtWebEnv> {
  try {
    // A literal specifier, so the app's bundler includes onnxruntime-web's wasm build.
    return (await import('onnxruntime-web/wasm')) as unknown as OrtModule & OrtWebEnv;
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
 * A Diffuse denoiser on ONNX Runtime Web's wasm execution provider, as an `AsyncDenoiser`.
 *
 * `source` is a tfjs MLP or U-Net (exported with `exportOnnx` in the page, one graph per batch size
 * on first use), the bytes of an `.onnx` file that `exportOnnx` wrote (its doc string carries the
 * model config: prediction, shape, classes, EDM sigma_data; its batch size is fixed), or the URL of
 * such a file (fetched). The prediction is the tfjs model's: F(x; logSNR), or EDM's
 * c_skip x_ve + c_out F(c_in x_ve; c_noise) (Karras et al. 2022, Table 1). Outputs match the tfjs
 * model within 1e-4 of the output scale (float32 on both sides, different summation order).
 *
 * `ort.env.wasm` is global and read when the runtime first starts: set `wasmPaths` / `threads` on
 * the first call.
 *
 * @example
 * import { onnxDenoiserWeb } from '@diffuse/onnx/web';
 * import { sample } from '@diffuse/samplers';
 * const den = await onnxDenoiserWeb('/models/mlp-b256.onnx', { wasmPaths: '/ort/' });
 * const x = await sample(den, { sampler: 'dpmpp_2m', steps: 20, batch: 256, seed: 1 });
 * await den.dispose();
 */
export async function onnxDenoiserWeb(
  source: DenoiserSource | URL | string,
  options: OnnxWebOptions = {},
): Promise<OnnxAsyncDenoiser> {
  const { wasmPaths, threads, ort: given, ...info } = options;
  const ort = given ?? (await loadOrtWeb());
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
    { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 },
    info,
  );
}
