/**
 * The ONNX Runtime worker behind `OnnxNetwork`: holds the inference sessions and runs them. The
 * main thread calls it synchronously through `synckit` (a worker plus `Atomics.wait`), so an ONNX
 * model is a plain synchronous `Denoiser` that every sampler and guidance wrapper accepts.
 */
import { runAsWorker } from 'synckit';

type Ort = typeof import('onnxruntime-node');

export type WorkerRequest =
  | { type: 'load'; key: string; bytes: Uint8Array; threads: number }
  | {
      type: 'run';
      key: string;
      feeds: {
        name: string;
        type: 'float32' | 'int32';
        data: Float32Array | Int32Array;
        dims: number[];
      }[];
    }
  | { type: 'release'; key: string };

export type WorkerResponse =
  | { ok: true; data?: Float32Array; dims?: number[] }
  | { ok: false; error: string };

let ort: Ort | undefined;
// biome-ignore lint/suspicious/noExplicitAny: session type comes from the optional dependency.
const sessions = new Map<string, any>();

runAsWorker(async (req: WorkerRequest): Promise<WorkerResponse> => {
  try {
    if (ort === undefined) ort = (await import('onnxruntime-node')) as Ort;
    if (req.type === 'load') {
      const session = await ort.InferenceSession.create(req.bytes, {
        executionProviders: ['cpu'],
        intraOpNumThreads: req.threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      });
      sessions.set(req.key, session);
      return { ok: true };
    }
    if (req.type === 'release') {
      await sessions.get(req.key)?.release();
      sessions.delete(req.key);
      return { ok: true };
    }
    const session = sessions.get(req.key);
    if (session === undefined) return { ok: false, error: `no session '${req.key}'` };
    const feeds: Record<string, unknown> = {};
    for (const f of req.feeds) feeds[f.name] = new ort.Tensor(f.type, f.data, f.dims);
    const out = await session.run(feeds);
    const y = out[session.outputNames[0]];
    return { ok: true, data: y.data as Float32Array, dims: [...y.dims] };
  } catch (e) {
    return { ok: false, error: (e as Error).message ?? String(e) };
  }
});
