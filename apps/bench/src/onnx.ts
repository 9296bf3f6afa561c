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
import { onnxDenoiser } from '@diffuse/onnx';
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

/** One-line description of the runtime for tables. */
export function onnxLabel(a: Extract<OnnxAvailability, { ok: true }>): string {
  return `${ONNX_RUNTIME} ${a.version}, ${a.threads} intra-op thread(s), through @diffuse/onnx's Denoiser (synckit worker)`;
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
