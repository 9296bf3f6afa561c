/**
 * The results of one run: the TypeScript view of `schema/results.schema.json` (the documented
 * schema; `validateResults` checks a document against it with ajv).
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import type { MachineInfo } from './machine.js';
import { RESULTS_SCHEMA } from './paths.js';
import type { Plan } from './plan.js';
import type { Stat } from './stats.js';

export const SCHEMA_VERSION = 2;

/** A backend as it was initialised (or why it was not). */
export interface BackendRecord {
  name: string;
  environment: 'node' | 'browser';
  available: boolean;
  /** Why it could not be used (when not available). */
  reason?: string;
  simd?: boolean;
  threads?: number;
  /** Diffuse's own wasm SIMD kernels are bound (`BackendInfo.simdKernels`). */
  simdKernels?: boolean;
  float32?: boolean;
  /** Browser runs: the browser's version string. */
  browser?: string;
}

export type SuiteStatus = 'ok' | 'partial' | 'skipped' | 'failed';

interface SuiteBase {
  status: SuiteStatus;
  /** What was left out or went wrong, and why; what a stand-in stands for. */
  notes: string[];
  durationMs: number;
}

export interface ModelRef {
  model: 'mlp' | 'unet';
  modelLabel: string;
  modelSource: 'package' | 'stand-in';
  params: number;
}

/** The sampling run of the throughput suite: whole runs, and where their time goes. */
export interface SamplingRecord {
  sampler: string;
  steps: number;
  nfe: number;
  msPerRun: Stat;
  samplesPerSecond: number;
  /** Median over runs of time inside the model, per step. */
  modelMsPerStep: number;
  /** Median over runs of time outside the model (the sampler's own work), per step. */
  overheadMsPerStep: number;
  /** overhead / (overhead + model). */
  overheadFraction: number;
  /** Live tensors seen at each model call of the last run. */
  liveTensorsPerCall: number[];
  /** Backend bytes (tf.memory().numBytes) at each model call of the last run. */
  bytesPerCall: number[];
  /** Live tensors after the run minus before it (0 when nothing leaked). */
  leakedTensors: number;
}

/** A runtime outside tfjs that computed a row (ONNX Runtime through `@diffuse/onnx`). */
export interface RuntimeRecord {
  /** npm package, e.g. `onnxruntime-node`. */
  name: string;
  version: string;
  /** Intra-op threads it was given. */
  threads: number;
  /** The tfjs backend holding the sampler's tensors and the denoiser's inputs and outputs. */
  host: string;
  /** How the sampler calls it (synchronous Denoiser through a worker, or AsyncDenoiser). */
  call: string;
  /** Export of the graph for this batch size plus session creation (the first, untimed call). */
  setupMs: number;
}

export interface ThroughputRow extends ModelRef {
  backend: string;
  environment: 'node' | 'browser';
  batch: number;
  msPerCall: Stat;
  /** batch / median seconds per call. */
  samplesPerSecond: number;
  /** Live tensors after the timed calls minus before them. */
  leakedTensors: number;
  /** Backend bytes held while idle, after the model was built. */
  modelBytes: number;
  /** Process resident set size after the calls (Node only). */
  rssBytes?: number;
  /** Set when the model ran outside tfjs (backend `onnx`). */
  runtime?: RuntimeRecord;
  sampling?: SamplingRecord;
}

export interface TrainingRow extends ModelRef {
  backend: string;
  environment: 'node' | 'browser';
  batch: number;
  /**
   * Which way of training the row measures: `default` (one thread, the `Trainer` step), or another
   * row of the training suite's `TRAINING_VARIANTS` (e.g. `no-wasm-transpose-fix`).
   */
  variant: string;
  /**
   * True for rows that measure a deliberately weakened configuration (e.g. a fix turned off): shown,
   * but never counted as Diffuse's time in the peers ratios or the goals.
   */
  ablation: boolean;
  /** Worker threads the step used (absent: one thread, the main one). */
  workers?: number;
  /** What is special about this row. */
  note?: string;
  msPerStep: Stat;
  leakedTensors: number;
}

export interface AccuracyPoint {
  /** NFE asked for. */
  nfeRequested: number;
  /** Model evaluations the sampler actually made. */
  nfe: number;
  steps: number;
  /** Mean and max L2 distance to the exact probability-flow ODE end points. */
  meanL2: number;
  maxL2: number;
  /** Sliced Wasserstein-2 distance to samples of the data distribution. */
  slicedWasserstein: number;
  /** MMD^2 (Gaussian kernel) to samples of the data distribution. */
  mmd: number;
}

export interface AccuracyCurve {
  mixture: string;
  sampler: string;
  stochastic: boolean;
  points: AccuracyPoint[];
  /** Set when this sampler failed on this mixture (a real failure); the message says why. */
  error?: string;
  /**
   * NFE targets this sampler cannot hit by construction (a step costs more model evaluations than
   * the target, or adaptive step sizes fix the NFE), shown as n/a with the reason; not failures.
   */
  unreachable?: { nfeRequested: number; reason: string }[];
}

export interface MixtureRecord {
  id: string;
  dim: number;
  components: number;
  /** How the exact ODE end points were obtained. */
  exactReference: string;
  /** Distance floor: sliced Wasserstein / MMD between two independent sets of data samples. */
  floor: { slicedWasserstein: number; mmd: number };
  samples: number;
}

export interface ReferenceComparison {
  /** Run id in the reference file. */
  id: string;
  source: 'diffusers' | 'k-diffusion';
  /** Our sampler and settings that match it. */
  ours: string;
  nfe: number;
  theirs: { meanL2: number; maxL2: number };
  mine: { meanL2: number; maxL2: number } | null;
  note?: string;
}

export interface AccuracySuite extends SuiteBase {
  mixtures: MixtureRecord[];
  curves: AccuracyCurve[];
  references: ReferenceComparison[];
}

export interface ThroughputSuite extends SuiteBase {
  rows: ThroughputRow[];
}

export interface TrainingSuite extends SuiteBase {
  rows: TrainingRow[];
}

/** One forward-pass measurement of a diffusers checkpoint (suite `checkpoints`). */
export interface CheckpointRow {
  /** Which checkpoint config (its weights are seeded random). */
  model: 'ddpm-cifar10-32';
  params: number;
  backend: string;
  batch: number;
  /** tfjs: loadDiffusersModel; onnx: that plus exportDiffusersOnnx and the session. */
  loadMs: number;
  msPerCall: Stat;
  /** tfjs: backend bytes held (weights + live tensors); onnx: the ONNX file's size. */
  modelBytes: number;
  /** The process's peak resident set size so far (process.resourceUsage().maxRSS). */
  peakRssBytes: number;
  leakedTensors: number;
  runtime?: { name: string; threads: number };
}

export interface CheckpointsSuite extends SuiteBase {
  rows: CheckpointRow[];
}

/** The PyTorch peer at one thread setting. */
export interface PeerSettingRow {
  torchThreads: number;
  openblasThreads: number;
  /** e.g. `torch 1 thread, OPENBLAS_NUM_THREADS=2`. */
  label: string;
  stat: Stat;
}

export interface PeerRow {
  model: 'mlp' | 'unet';
  task: 'forward' | 'train';
  batch: number;
  paramsTorch: number;
  paramsOurs: number;
  /** PyTorch at its best: the setting with the lowest median (`setting`). */
  torch: Stat;
  /** The label of PyTorch's best setting for this task. */
  setting: string;
  /** Every thread setting measured, in the plan's order. */
  settings: PeerSettingRow[];
  /** Our backend compared (the fastest Node backend measured at the same batch). */
  oursBackend: string | null;
  oursMs: number | null;
  /** ours / torch: above 1 means we are slower. */
  ratio: number | null;
}

export interface PeersSuite extends SuiteBase {
  torch: {
    available: boolean;
    version?: string;
    threads?: number;
    python?: string;
    blas?: string;
    install?: string;
    /** The thread settings that ran. */
    settings?: { torchThreads: number; openblasThreads: number; label: string }[];
    /** OpenBLAS / OpenMP variables set in the environment (passed through unchanged). */
    env?: Record<string, string>;
  };
  rows: PeerRow[];
}

/** One of issue 9's performance goals, computed from the same run. */
export interface GoalRow {
  id: 'sampling-mlp' | 'sampling-unet' | 'training-mlp' | 'training-unet' | 'sampler-overhead-unet';
  /** What is compared, in words. */
  goal: string;
  model: 'mlp' | 'unet';
  batch: number | null;
  /** Diffuse's number: the runtime/backend and its milliseconds (null when not measured). */
  ours: { what: string; ms: number } | null;
  /** What it is divided by: PyTorch's milliseconds, or the U-Net's time per step. */
  reference: { what: string; ms: number } | null;
  /** ours / reference (null when either is missing). */
  value: number | null;
  target: { op: '<=' | '<'; value: number };
  status: 'pass' | 'fail' | 'n/a';
  /** Why the status is n/a, or what else is worth knowing (e.g. the other runtimes). */
  note?: string;
}

export interface GoalsRecord {
  /** Where the goals come from. */
  source: string;
  rows: GoalRow[];
}

export interface Results {
  schemaVersion: typeof SCHEMA_VERSION;
  createdAt: string;
  argv: string[];
  plan: Plan;
  machine: MachineInfo;
  backends: BackendRecord[];
  suites: {
    accuracy?: AccuracySuite;
    throughput?: ThroughputSuite;
    training?: TrainingSuite;
    peers?: PeersSuite;
    checkpoints?: CheckpointsSuite;
  };
  /** Issue 9's goals as ratios of numbers measured in this run. */
  goals: GoalsRecord;
  durationMs: number;
}

/** The JSON Schema of results.json. */
export function resultsSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(RESULTS_SCHEMA, 'utf8')) as Record<string, unknown>;
}

let validator: ReturnType<Ajv['compile']> | undefined;

/** Validates a results document; returns the ajv errors (empty when valid). */
export function validateResults(doc: unknown): ErrorObject[] {
  if (validator === undefined) {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    validator = ajv.compile(resultsSchema());
  }
  return validator(doc) ? [] : [...(validator.errors ?? [])];
}

/** Ajv errors as readable lines. */
export function formatSchemaErrors(errors: ErrorObject[]): string {
  return errors
    .map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`)
    .join('\n');
}
