/**
 * The native inference runtime of issue 9: the bench's networks exported by `@diffuse/onnx` and run by
 * ONNX Runtime (`onnxruntime-node`, an optional peer of `@diffuse/onnx`) behind the same `Denoiser`
 * interface the samplers use. A model call therefore includes everything a sampler pays for: the
 * readback of x from tfjs, the synchronous round trip to `@diffuse/onnx`'s worker thread (synckit),
 * ONNX Runtime's `run`, and the upload of the result to tfjs.
 *
 * When `onnxruntime-node` is not installed the rows say "n/a (onnxruntime-node not installed)" instead
 * of failing the run.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { onnxDenoiser, onnxDenoiserAsync } from '@diffuse/onnx';
import type { BenchModel } from './models.js';

/** The npm package that runs the exported graphs. */
export const ONNX_RUNTIME = 'onnxruntime-node';

/** What a missing runtime reports. */
export const ONNX_MISSING = `n/a (${ONNX_RUNTIME} not installed)`;

/** How the runtime was found: its version, or why it cannot be used. */
export type OnnxAvailability =
  | { ok: true; version: string; threads: number }
  | { ok: false; reason: string };

const require = createRequire(import.meta.url);

/**
 * Whether `onnxruntime-node` can be loaded here, and its version. `resolve` finds a package's
 * `package.json` (injected by tests to simulate a missing install).
 *
 * @example
 * const ort = onnxAvailability();
 * if (!ort.ok) console.log(ort.reason); // "n/a (onnxruntime-node not installed)"
 */
export function onnxAvailability(
  resolve: (id: string) => string = (id) => require.resolve(id),
  threads = os.availableParallelism?.() ?? os.cpus().length,
): OnnxAvailability {
  let pkg: string;
  try {
    pkg = resolve(`${ONNX_RUNTIME}/package.json`);
  } catch {
    return { ok: false, reason: ONNX_MISSING };
  }
  try {
    const { version } = require(pkg) as { version: string };
    return { ok: true, version, threads };
  } catch (e) {
    return { ok: false, reason: `n/a (${ONNX_RUNTIME} unreadable: ${(e as Error).message})` };
  }
}

/** How each ONNX runtime name is called. */
export const ONNX_CALLS = {
  onnx: 'the synchronous Denoiser (onnxDenoiser: a synckit worker round trip per call)',
  'onnx-async':
    'an AsyncDenoiser on the main thread (onnxDenoiserAsync: awaited session.run, no worker)',
} as const;

/** One-line description of the runtime for tables. */
export function onnxLabel(
  a: Extract<OnnxAvailability, { ok: true }>,
  backend: keyof typeof ONNX_CALLS,
): string {
  return `${ONNX_RUNTIME} ${a.version}, ${a.threads} intra-op thread(s), called through ${ONNX_CALLS[backend]}`;
}

/**
 * `model` with its denoiser replaced by the ONNX Runtime one (exported from the same tfjs network,
 * same weights). Disposing the result releases the ONNX sessions; the tfjs network stays with `model`.
 */
export function onnxBenchModel(model: BenchModel, threads: number): BenchModel {
  const denoiser = onnxDenoiser(model.net, { threads });
  return {
    ...model,
    label: `${model.label}, exported to ONNX`,
    denoiser,
    dispose: () => denoiser.dispose(),
  };
}

/**
 * `model` with ONNX Runtime as an `AsyncDenoiser` on Node's main thread (`onnxDenoiserAsync`: the
 * sampler awaits `predictAsync`, no worker round trip). `denoiser` stays the tfjs one (training and
 * guidance need a synchronous model); `asyncDenoiser` is what the throughput suite calls.
 */
export async function onnxAsyncBenchModel(model: BenchModel, threads: number): Promise<BenchModel> {
  const asyncDenoiser = await onnxDenoiserAsync(model.net, { threads });
  return {
    ...model,
    label: `${model.label}, exported to ONNX`,
    asyncDenoiser,
    dispose: () => {
      void asyncDenoiser.dispose();
    },
  };
}
