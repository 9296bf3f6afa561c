/**
 * ONNX Runtime Web for the page's inference: a shipped tfjs network exported to ONNX in the page
 * (`onnxDenoiserWeb` of `@diffuse/onnx/web`, once per network) and run by onnxruntime-web's wasm
 * build as an `AsyncDenoiser` that the samplers and classifier-free guidance take unchanged.
 *
 * onnxruntime-web and its ~14 MB wasm binary are loaded on first use only (a dynamic import), from
 * the page's own origin (`?url` asset: the page works offline). Its kernels use both cores when the
 * page is cross-origin isolated (the dev server, the preview and the e2e server send COOP/COEP, see
 * `vite.config.ts`); otherwise one thread.
 */
import type { Denoiser } from '@diffuse/models';
import ortWasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';

/** What the page shows of the runtime: its thread count and whether the page is isolated. */
export interface OrtInfo {
  threads: number;
  crossOriginIsolated: boolean;
}

/** An AsyncDenoiser (predictAsync) with the tfjs denoiser's fields. */
export type OrtDenoiser = Awaited<ReturnType<typeof import('@diffuse/onnx/web').onnxDenoiserWeb>>;

const sessions = new WeakMap<object, Promise<OrtDenoiser>>();

/** Threads onnxruntime-web may use here: both cores (up to 4) when isolated, else 1. */
export function ortInfo(): OrtInfo {
  const isolated = globalThis.crossOriginIsolated === true;
  return {
    threads: isolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1,
    crossOriginIsolated: isolated,
  };
}

/** The network `net` on onnxruntime-web (exported and its session created once per network). */
export function ortDenoiser(net: Denoiser): Promise<OrtDenoiser> {
  let p = sessions.get(net);
  if (!p) {
    p = (async () => {
      const { onnxDenoiserWeb } = await import('@diffuse/onnx/web');
      return onnxDenoiserWeb(net as Parameters<typeof onnxDenoiserWeb>[0], {
        wasmPaths: { wasm: ortWasm },
        threads: ortInfo().threads,
      });
    })();
    p.catch(() => sessions.delete(net));
    sessions.set(net, p);
  }
  return p;
}
