/**
 * What a run measures: the suites, backends and sizes, resolved from the command-line options and
 * one of three presets (`quick`, `default`, `full`). The plan is stored in results.json, so every
 * number can be traced to the sizes that produced it.
 */
import { availableParallelism } from 'node:os';

export const SUITES = ['accuracy', 'throughput', 'training', 'peers', 'checkpoints'] as const;
/** The suites of a run without `--suites` (checkpoints is opt-in: a 35.7M-parameter model). */
export const DEFAULT_SUITES: readonly SuiteName[] = ['accuracy', 'throughput', 'training', 'peers'];
export type SuiteName = (typeof SUITES)[number];

/**
 * Node runtimes: tfjs' `wasm` and `cpu` backends, and ONNX Runtime (the networks exported by
 * `@diffuse/onnx`, run by onnxruntime-node; inference only, so throughput and sampling rows):
 * `onnx` through the synchronous `Denoiser` (a worker thread), `onnx-async` as an `AsyncDenoiser` on
 * the main thread; `wasm-workers-2`: tfjs-wasm on 2 worker threads (`ParallelDenoiser` of
 * `@diffuse/train`, an `AsyncDenoiser`; inference rows, the training suite has its own `workers-2`).
 */
export const NODE_BACKENDS = ['wasm', 'cpu', 'onnx', 'onnx-async', 'wasm-workers-2'] as const;
/**
 * Runtimes in headless Chromium (`--browser`): tfjs' webgl and webgpu backends (software here),
 * tfjs-wasm single-threaded with Diffuse's SIMD kernels (`wasm-1t`) and on its threaded build
 * (`wasm-threads`, the page cross-origin isolated), and ONNX Runtime Web (`onnx-web`, inference).
 */
export const BROWSER_BACKENDS = ['webgl', 'webgpu', 'wasm-1t', 'wasm-threads', 'onnx-web'] as const;
export type BenchBackend = (typeof NODE_BACKENDS)[number] | (typeof BROWSER_BACKENDS)[number];

export type Preset = 'quick' | 'default' | 'full';

/** Batch sizes of one backend. */
export interface BackendSizes {
  /** MLP denoiser batch for forward passes and sampling. */
  mlpBatch: number;
  /** U-Net batch for forward passes and sampling. */
  unetBatch: number;
  /** MLP batch of one Adam step. */
  mlpTrainBatch: number;
  /** U-Net batch of one Adam step. */
  unetTrainBatch: number;
}

export interface Plan {
  preset: Preset;
  suites: SuiteName[];
  /** Backends (runtimes) in Node. */
  backends: BenchBackend[];
  /** Backends run in headless Chromium (only with `--browser`). */
  browserBackends: BenchBackend[];
  warmup: number;
  repeats: number;
  /** Sizes on fast backends (wasm, and the browser's). */
  sizes: BackendSizes;
  /** Sizes on the cpu backend (25-35x slower than wasm, so smaller by default). */
  cpuSizes: BackendSizes;
  /** Steps of the sampling run that measures samples/s and the sampler's own overhead. */
  samplingSteps: number;
  accuracy: {
    /** Model evaluations (NFE) to measure every sampler at. */
    nfe: number[];
    /** Samples per run for the distribution metrics (the first 16 of mixture A are the stored noise). */
    samples: number;
    /** Random projections of the sliced Wasserstein distance. */
    projections: number;
    /** Dimension of the higher-dimensional mixture. */
    highDim: number;
    /** Only these samplers (all registered ones when empty). */
    samplers: string[];
  };
  /**
   * Time the U-Net's Adam step on the cpu backend (only with --cpu-unet-training: one step takes
   * minutes there even at batch 1, in tfjs-backend-cpu's conv gradients).
   */
  cpuUnetTraining: boolean;
  /** Measure MLP training on wasm without the backend's explicit-transpose matMul fix as well. */
  transposeFixComparison: boolean;
  /** Measure training on wasm without `@diffuse/backend`'s own SIMD kernels as well. */
  simdKernelsComparison: boolean;
  /** Python interpreter for the PyTorch peer (tried in order). */
  python: string[];
  /**
   * The PyTorch peer's thread settings and repeats. Each setting runs in its own process (OpenBLAS
   * reads OPENBLAS_NUM_THREADS once, at load); the Goals compare with the best median per task.
   */
  peer: {
    settings: PeerSetting[];
    warmup: number;
    repeats: number;
  };
  seed: number;
}

/** One thread setting of the PyTorch peer: torch's intra-op threads and OpenBLAS's threads. */
export interface PeerSetting {
  torchThreads: number;
  openblasThreads: number;
}

/**
 * The thread settings worth measuring on `cores` cores: torch intra-op threads 1, 2 and all cores,
 * times OPENBLAS_NUM_THREADS 1 and 2 (Debian's torch calls OpenBLAS from each of its threads, so
 * 2 x 2 means 4 busy threads on 2 cores; which setting is fastest depends on the network).
 *
 * @example
 * peerSettings(2); // 1x1, 1x2, 2x1, 2x2
 */
export function peerSettings(cores: number): PeerSetting[] {
  const torch = [...new Set([1, 2, cores])].filter((t) => t >= 1 && t <= Math.max(1, cores));
  const out: PeerSetting[] = [];
  for (const torchThreads of torch.sort((a, b) => a - b))
    for (const openblasThreads of [1, 2]) out.push({ torchThreads, openblasThreads });
  return out;
}

const PRESETS: Record<
  Preset,
  Omit<Plan, 'suites' | 'backends' | 'browserBackends' | 'python' | 'seed' | 'peer'> & {
    peerWarmup: number;
    peerRepeats: number;
  }
> = {
  quick: {
    preset: 'quick',
    warmup: 1,
    repeats: 2,
    sizes: { mlpBatch: 512, unetBatch: 2, mlpTrainBatch: 512, unetTrainBatch: 2 },
    cpuSizes: { mlpBatch: 64, unetBatch: 1, mlpTrainBatch: 64, unetTrainBatch: 1 },
    samplingSteps: 3,
    accuracy: { nfe: [5, 10], samples: 256, projections: 32, highDim: 8, samplers: [] },
    cpuUnetTraining: false,
    transposeFixComparison: false,
    simdKernelsComparison: false,
    peerWarmup: 1,
    peerRepeats: 3,
  },
  default: {
    preset: 'default',
    warmup: 1,
    // 5, not 3: single PyTorch Adam steps of the U-Net vary from 0.4 to 0.9 s here, and a median
    // of 3 moved the training goals' ratios by +-40% between runs of the same build.
    repeats: 5,
    sizes: { mlpBatch: 4096, unetBatch: 8, mlpTrainBatch: 4096, unetTrainBatch: 8 },
    cpuSizes: { mlpBatch: 256, unetBatch: 1, mlpTrainBatch: 256, unetTrainBatch: 1 },
    samplingSteps: 10,
    accuracy: {
      nfe: [5, 10, 20, 50, 100],
      samples: 1024,
      projections: 64,
      highDim: 16,
      samplers: [],
    },
    cpuUnetTraining: false,
    transposeFixComparison: true,
    simdKernelsComparison: true,
    // The peer's own repeats, per thread setting: 3 warm-up and 15 timed calls. With 5 timed
    // calls, PyTorch's best U-Net Adam median moved by up to ~30% between runs here.
    peerWarmup: 3,
    peerRepeats: 15,
  },
  full: {
    preset: 'full',
    warmup: 2,
    repeats: 7,
    sizes: { mlpBatch: 4096, unetBatch: 64, mlpTrainBatch: 4096, unetTrainBatch: 64 },
    cpuSizes: { mlpBatch: 4096, unetBatch: 64, mlpTrainBatch: 4096, unetTrainBatch: 64 },
    samplingSteps: 20,
    accuracy: {
      nfe: [5, 8, 10, 15, 20, 30, 50, 75, 100],
      samples: 4096,
      projections: 128,
      highDim: 32,
      samplers: [],
    },
    cpuUnetTraining: false,
    transposeFixComparison: true,
    simdKernelsComparison: true,
    peerWarmup: 3,
    peerRepeats: 21,
  },
};

/** Options as the command line gives them (all optional). */
export interface PlanOptions {
  quick?: boolean;
  full?: boolean;
  suites?: string[];
  backends?: string[];
  browser?: boolean;
  warmup?: number;
  repeats?: number;
  mlpBatch?: number;
  unetBatch?: number;
  cpuMlpBatch?: number;
  cpuUnetBatch?: number;
  steps?: number;
  nfe?: number[];
  samples?: number;
  samplers?: string[];
  transposeFix?: boolean;
  simdComparison?: boolean;
  cpuUnetTraining?: boolean;
  python?: string;
  /** Timed calls per PyTorch thread setting. */
  peerRepeats?: number;
  /** Cores the peer's thread settings are drawn for (default: this machine's). */
  cores?: number;
  seed?: number;
}

/** A bad option value; the message says which and what is allowed. */
export class PlanError extends Error {
  override name = 'PlanError';
}

function pick<T extends string>(
  what: string,
  given: string[] | undefined,
  allowed: readonly T[],
  fallback: T[],
): T[] {
  if (given === undefined || given.length === 0) return fallback;
  const out: T[] = [];
  for (const g of given) {
    if (g === 'all') return [...allowed];
    if (!(allowed as readonly string[]).includes(g)) {
      throw new PlanError(`unknown ${what} '${g}'; use ${allowed.join(', ')} or all`);
    }
    if (!out.includes(g as T)) out.push(g as T);
  }
  return out;
}

function positive(name: string, v: number | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min)
    throw new PlanError(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** Resolves command-line options into a plan. Throws `PlanError` on a bad value. */
export function resolvePlan(o: PlanOptions = {}): Plan {
  if (o.quick && o.full) throw new PlanError('--quick and --full exclude each other');
  const preset: Preset = o.quick ? 'quick' : o.full ? 'full' : 'default';
  const { peerWarmup, peerRepeats, ...base } = structuredClone(PRESETS[preset]);
  const suites = pick('suite', o.suites, SUITES, [...DEFAULT_SUITES]);
  const backends = pick(
    'backend',
    o.backends,
    [...NODE_BACKENDS, ...BROWSER_BACKENDS],
    [...NODE_BACKENDS],
  );
  const nodeBackends = backends.filter((b) => (NODE_BACKENDS as readonly string[]).includes(b));
  let browserBackends = backends.filter((b) => (BROWSER_BACKENDS as readonly string[]).includes(b));
  if (o.browser && browserBackends.length === 0) browserBackends = [...BROWSER_BACKENDS];
  if (browserBackends.length > 0 && !o.browser) {
    throw new PlanError(
      `backends ${browserBackends.join(', ')} run in headless Chromium: add --browser`,
    );
  }
  const plan: Plan = {
    ...base,
    suites,
    backends: nodeBackends,
    browserBackends,
    python: o.python ? [o.python] : ['/usr/bin/python3', 'python3'],
    peer: {
      settings: peerSettings(o.cores ?? availableParallelism()),
      warmup: peerWarmup,
      repeats: positive('--peer-repeats', o.peerRepeats) ?? peerRepeats,
    },
    seed: o.seed ?? 20240601,
  };
  plan.warmup = positive('--warmup', o.warmup, 0) ?? plan.warmup;
  plan.repeats = positive('--repeats', o.repeats) ?? plan.repeats;
  plan.sizes.mlpBatch = positive('--mlp-batch', o.mlpBatch) ?? plan.sizes.mlpBatch;
  plan.sizes.mlpTrainBatch = positive('--mlp-batch', o.mlpBatch) ?? plan.sizes.mlpTrainBatch;
  plan.sizes.unetBatch = positive('--unet-batch', o.unetBatch) ?? plan.sizes.unetBatch;
  plan.sizes.unetTrainBatch = positive('--unet-batch', o.unetBatch) ?? plan.sizes.unetTrainBatch;
  plan.cpuSizes.mlpBatch = positive('--cpu-mlp-batch', o.cpuMlpBatch) ?? plan.cpuSizes.mlpBatch;
  plan.cpuSizes.mlpTrainBatch =
    positive('--cpu-mlp-batch', o.cpuMlpBatch) ?? plan.cpuSizes.mlpTrainBatch;
  plan.cpuSizes.unetBatch = positive('--cpu-unet-batch', o.cpuUnetBatch) ?? plan.cpuSizes.unetBatch;
  plan.cpuSizes.unetTrainBatch =
    positive('--cpu-unet-batch', o.cpuUnetBatch) ?? plan.cpuSizes.unetTrainBatch;
  plan.samplingSteps = positive('--steps', o.steps) ?? plan.samplingSteps;
  if (o.nfe !== undefined && o.nfe.length > 0) {
    for (const n of o.nfe) positive('--nfe', n);
    plan.accuracy.nfe = [...new Set(o.nfe)].sort((a, b) => a - b);
  }
  plan.accuracy.samples = positive('--samples', o.samples, 16) ?? plan.accuracy.samples;
  if (o.samplers !== undefined) plan.accuracy.samplers = o.samplers;
  if (o.transposeFix === false) plan.transposeFixComparison = false;
  if (o.simdComparison === false) plan.simdKernelsComparison = false;
  if (o.cpuUnetTraining) plan.cpuUnetTraining = true;
  return plan;
}

/** Sizes for one backend. */
export function sizesFor(plan: Plan, backend: BenchBackend): BackendSizes {
  return backend === 'cpu' ? plan.cpuSizes : plan.sizes;
}
