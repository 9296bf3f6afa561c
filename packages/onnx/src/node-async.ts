/**
 * The `AsyncDenoiser` of a Diffuse network on onnxruntime-node, called on Node's main thread
 * (`await session.run`, no worker): the same runtime wrapper as `@diffuse/onnx/web`, for code that
 * runs in both places and for servers that must not block their event loop.
 */
import {
  createAsyncDenoiser,
  type DenoiserInfo,
  type DenoiserSource,
  type OnnxAsyncDenoiser,
  type OrtModule,
} from './async-runtime.js';
import { OnnxError } from './errors.js';
import type { OnnxOptions } from './runtime.js';

/**
 * A Diffuse denoiser on onnxruntime-node as an `AsyncDenoiser` (`predictAsync`), for `sample`,
 * `sampleSteps`, `invert` and the guidance wrappers; `onnxDenoiser` is the synchronous one (through a
 * worker thread) that `logLikelihood` also accepts. `source`: a tfjs MLP or U-Net (exported once,
 * on first use; one session for every batch size) or the bytes of an `.onnx` file `exportOnnx` wrote.
 *
 * @example
 * const den = await onnxDenoiserAsync(mlp, { threads: 2 });
 * const x = await sample(den, { sampler: 'dpmpp_2m', steps: 20, shape: [4096, 2], seed: 1 });
 * await den.dispose();
 */
export async function onnxDenoiserAsync(
  source: DenoiserSource,
  options: OnnxOptions & Partial<DenoiserInfo> = {},
): Promise<OnnxAsyncDenoiser> {
  const { threads, ...info } = options;
  let ort: OrtModule;
  try {
    ort = (await import('onnxruntime-node')) as unknown as OrtModule;
  } catch (e) {
    throw new OnnxError(
      `cannot load onnxruntime-node (install the optional peer dependency: pnpm add onnxruntime-node@1.30.0): ${(e as Error).message}`,
      { cause: e },
    );
  }
  return createAsyncDenoiser(
    ort,
    source,
    {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads ?? 2,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    },
    info,
  );
}
