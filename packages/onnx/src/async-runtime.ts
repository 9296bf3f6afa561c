/**
 * Asynchronous ONNX Runtime inference behind the `AsyncDenoiser` interface, for any runtime with
 * onnxruntime-common's API: onnxruntime-web in the browser (`InferenceSession.run` is async-only and a
 * browser's main thread may not block) and onnxruntime-node on Node's main thread (no worker).
 *
 * No Node API is used here, so this module (and `@diffuse/onnx/web`) runs in any JS environment.
 * Each call reads the input back from tfjs with `await x.data()` (never `dataSync`, so a
 * webgl/webgpu backend does not stall the page) and uploads the output as a new tensor.
 */
import type {
  AsyncDenoiser,
  Conditioning,
  Denoiser,
  Mlp,
  ModelConfig,
  UNet,
} from '@diffuse/models';
import { logSNRTensor } from '@diffuse/models';
import {
  edmPreconditioning,
  type NoiseLevel,
  type Prediction,
  type Scalar,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import onnxProto from 'onnx-proto';
import { OnnxError } from './errors.js';
import { exportOnnx } from './export.js';

/** An ONNX Runtime tensor, as onnxruntime-common defines it (the parts used here). */
export interface OrtTensorLike {
  readonly data: unknown;
  readonly dims: readonly number[];
  readonly type: string;
}

/** An ONNX Runtime inference session (the parts used here). */
export interface OrtSessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}

/**
 * The ONNX Runtime module: `import * as ort from 'onnxruntime-web'` (or `onnxruntime-web/wasm`,
 * `onnxruntime-node`). Only `InferenceSession.create` and `Tensor` are used.
 */
export interface OrtModule {
  InferenceSession: {
    create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSessionLike>;
  };
  Tensor: new (
    type: 'float32' | 'int32',
    data: Float32Array | Int32Array,
    dims: readonly number[],
  ) => OrtTensorLike;
}

/** What a denoiser needs to know about an exported network (read from the file's doc string). */
export interface DenoiserInfo {
  /** What the network's output is, or `x0` under EDM preconditioning. */
  prediction: Prediction;
  /** One example's shape (without the batch axis). */
  shape: readonly number[];
  /** Number of classes (0 or undefined: unconditional); the null class is `numClasses`. */
  numClasses?: number;
  /** EDM preconditioning's sigma_data when the graph is the raw network F of an EDM denoiser. */
  sigmaData?: number;
}

/** An ONNX Runtime `AsyncDenoiser`; `dispose` releases its sessions. */
export interface OnnxAsyncDenoiser extends AsyncDenoiser {
  readonly shape: readonly number[];
  /** The fixed batch size of a file's graph, or undefined when it takes any batch size. */
  readonly batchSize: number | undefined;
  /** Releases the ONNX Runtime session (the tfjs model, if any, is untouched). */
  dispose(): Promise<void>;
}

/**
 * Where the graph comes from: a tfjs network (exported on first use) or a file, whose batch is
 * symbolic (`batch` undefined) or fixed.
 */
export type GraphSource =
  | { net: Mlp | UNet }
  | { bytes: Uint8Array; batch: number | undefined; inputs: readonly string[] };

/** Metadata of an exported denoiser file: inputs, outputs, and the model config if present. */
export interface OnnxFileInfo {
  /** Input names and dimensions; a symbolic dimension (`dim_param`, e.g. the batch) is -1. */
  inputs: { name: string; dims: number[] }[];
  outputs: string[];
  /** The Diffuse model config `exportOnnx` stores in the doc string (undefined for foreign files). */
  config: ModelConfig | undefined;
}

/**
 * Reads an .onnx file's inputs, outputs and Diffuse config (the JSON doc string `exportOnnx` writes)
 * without running it.
 *
 * @example
 * const info = readOnnxInfo(exportOnnx(mlp)); // { inputs: [{ name: 'x', dims: [-1, 2] }, ...], config: { kind: 'mlp', ... } }
 */
export function readOnnxInfo(bytes: Uint8Array): OnnxFileInfo {
  let model: ReturnType<typeof onnxProto.onnx.ModelProto.decode>;
  try {
    model = onnxProto.onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new OnnxError(`not an ONNX model file: ${(e as Error).message}`, { cause: e });
  }
  const graph = model.graph;
  if (!graph) throw new OnnxError('the ONNX file has no graph');
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? [])
    .filter((v) => !initializers.has(v.name ?? ''))
    .map((v) => ({
      name: v.name ?? '',
      dims: (v.type?.tensorType?.shape?.dim ?? []).map((d) =>
        d.dimValue == null ? -1 : Number(d.dimValue),
      ),
    }));
  let config: ModelConfig | undefined;
  try {
    const parsed = JSON.parse(model.docString ?? '');
    if (parsed && typeof parsed === 'object' && typeof parsed.kind === 'string') config = parsed;
  } catch {
    config = undefined;
  }
  return { inputs, outputs: (graph.output ?? []).map((v) => v.name ?? ''), config };
}

/**
 * The denoiser facts of an exported file: its config's prediction / shape / classes / EDM
 * sigma_data, overridden by `given` (needed for files that `exportOnnx` did not write).
 */
export function denoiserInfo(info: OnnxFileInfo, given: Partial<DenoiserInfo> = {}): DenoiserInfo {
  const c = info.config;
  if (c?.kind === 'classifier' || c?.kind === 'image-classifier') {
    throw new OnnxError('this ONNX file is a classifier (logits), not a denoiser');
  }
  const x = info.inputs.find((i) => i.name === 'x');
  const noise = info.inputs.find((i) => i.name === 'noise');
  if (!x || !noise) {
    throw new OnnxError(
      `a denoiser graph needs inputs 'x' and 'noise' (as exportOnnx writes); this one has ${info.inputs
        .map((i) => `'${i.name}'`)
        .join(', ')}`,
    );
  }
  const prediction =
    given.prediction ?? (c ? (c.preconditioning ? 'x0' : c.prediction) : undefined);
  if (prediction === undefined) {
    throw new OnnxError(
      'the ONNX file carries no Diffuse config (doc string): give options.prediction',
    );
  }
  const sigmaData = given.sigmaData ?? c?.preconditioning?.sigmaData ?? undefined;
  const hasLabels = info.inputs.some((i) => i.name === 'labels');
  const numClasses = given.numClasses ?? (c && c.numClasses > 0 ? c.numClasses : undefined);
  if (hasLabels && !(numClasses !== undefined && numClasses > 0)) {
    throw new OnnxError("the graph takes 'labels': give options.numClasses (its null class)");
  }
  return {
    prediction,
    shape: given.shape ?? x.dims.slice(1),
    ...(hasLabels ? { numClasses } : {}),
    ...(sigmaData !== undefined ? { sigmaData } : {}),
  };
}

const isTensor = (v: unknown): v is tf.Tensor =>
  v != null && typeof v === 'object' && Array.isArray((v as tf.Tensor).shape);

/**
 * The raw network F(x; noise, labels) of an exported graph on an ONNX Runtime, called
 * asynchronously: one session, created on first use (a tfjs network is exported then, with a
 * symbolic batch; a file serves the batch sizes it was exported for: any, or its fixed one).
 */
export class AsyncOnnxNetwork {
  private created: Promise<OrtSessionLike> | undefined;

  constructor(
    private readonly ort: OrtModule,
    private readonly source: GraphSource,
    private readonly sessionOptions: Record<string, unknown>,
    readonly numClasses: number | undefined,
  ) {}

  /** The fixed batch size of a file's graph; undefined when the batch is symbolic (any size). */
  get batchSize(): number | undefined {
    return 'bytes' in this.source ? this.source.batch : undefined;
  }

  /** The session (created once). */
  private session(batch: number): Promise<OrtSessionLike> {
    const src = this.source;
    if ('bytes' in src && src.batch !== undefined && src.batch !== batch) {
      throw new OnnxError(
        `this ONNX graph was exported for batches of ${src.batch}, got a batch of ${batch} (export with exportOnnx(net) for any batch size, or give the network itself)`,
      );
    }
    if (this.created === undefined) {
      const bytes = 'bytes' in src ? src.bytes : exportOnnx(src.net);
      this.created = this.ort.InferenceSession.create(bytes, this.sessionOptions).catch(
        (e: unknown) => {
          this.created = undefined;
          throw new OnnxError(`creating the ONNX Runtime session: ${(e as Error).message ?? e}`, {
            cause: e,
          });
        },
      );
    }
    return this.created;
  }

  /** F(x; noise, labels): `noise` is per example, [batch]; the result is a new tensor shaped like x. */
  async applyAsync(x: tf.Tensor, noise: tf.Tensor, cond?: Conditioning): Promise<tf.Tensor> {
    const batch = x.shape[0]!;
    const session = await this.session(batch);
    const feeds: Record<string, OrtTensorLike> = {
      x: new this.ort.Tensor('float32', (await x.data()) as Float32Array, x.shape),
      noise: new this.ort.Tensor('float32', (await noise.data()) as Float32Array, [batch]),
    };
    if (session.inputNames.includes('labels')) {
      const labels = cond?.labels;
      let data: Int32Array;
      if (labels === undefined) {
        data = new Int32Array(batch).fill(this.numClasses ?? 0); // the null class: unconditional
      } else {
        if (!isTensor(labels) || labels.size !== batch) {
          throw new OnnxError(`cond.labels must be an int32 tensor of ${batch} class indices`);
        }
        data = Int32Array.from(await labels.data());
      }
      feeds.labels = new this.ort.Tensor('int32', data, [batch]);
    }
    let out: Record<string, OrtTensorLike>;
    try {
      out = await session.run(feeds);
    } catch (e) {
      throw new OnnxError(`running the ONNX model: ${(e as Error).message ?? e}`, { cause: e });
    }
    const y = out[session.outputNames[0]!]!;
    return tf.tensor(y.data as Float32Array, [...y.dims], 'float32');
  }

  /** Releases the session. */
  async dispose(): Promise<void> {
    const s = this.created;
    this.created = undefined;
    await (await s?.catch(() => undefined))?.release();
  }
}

/**
 * The `AsyncDenoiser` of a raw network: F(x; logSNR) of the declared prediction or, with EDM
 * preconditioning (Karras et al. 2022, sec. 5, Table 1; coefficients from `edmPreconditioning`),
 * D = c_skip x_ve + c_out F(c_in x_ve; c_noise) with x_ve = x / alpha: the same formulas as the tfjs
 * model's `predict` (`edmPreconditioned` in `@diffuse/models`), with the network call awaited.
 *
 * Samplers and the guidance wrappers of `@diffuse/guidance` await its `predictAsync`. Its `predict`
 * throws an `OnnxError`: `logLikelihood`, the one synchronous API, needs a synchronous `Denoiser`.
 */
export function asyncDenoiser(network: AsyncOnnxNetwork, info: DenoiserInfo): OnnxAsyncDenoiser {
  const sigmaData = info.sigmaData;
  async function predictAsync(
    x: tf.Tensor,
    level: NoiseLevel<Scalar>,
    cond?: Conditioning,
  ): Promise<tf.Tensor> {
    const batch = x.shape[0]!;
    if (sigmaData === undefined) {
      const noise = logSNRTensor(level, batch);
      try {
        return await network.applyAsync(x, noise, cond);
      } finally {
        noise.dispose();
      }
    }
    const { alpha, sigma } = level;
    if (typeof alpha !== 'number' || typeof sigma !== 'number') {
      throw new OnnxError(
        'an EDM-preconditioned ONNX denoiser takes number levels (one level per batch, as while sampling)',
      );
    }
    const c = edmPreconditioning(sigma / alpha, sigmaData);
    const [xVe, xIn, noise] = tf.tidy(() => {
      const xVe = tf.div(x, alpha);
      return [xVe, tf.mul(xVe, c.cIn), tf.fill([batch], c.cNoise)];
    });
    try {
      const f = await network.applyAsync(xIn, noise, cond);
      try {
        return tf.tidy(() => tf.add(tf.mul(xVe, c.cSkip), tf.mul(f, c.cOut)));
      } finally {
        f.dispose();
      }
    } finally {
      tf.dispose([xVe, xIn, noise]);
    }
  }
  const denoiser = {
    prediction: info.prediction,
    shape: info.shape,
    ...(info.numClasses !== undefined ? { numClasses: info.numClasses } : {}),
    batchSize: network.batchSize,
    predictAsync,
    dispose: () => network.dispose(),
  };
  // For plain-JS callers of synchronous APIs: a typed error instead of "predict is not a function".
  Object.defineProperty(denoiser, 'predict', {
    enumerable: false,
    value: (() => {
      throw new OnnxError(
        'this ONNX Runtime denoiser is asynchronous (predictAsync): sample, sampleSteps, invert and the guidance wrappers accept it; logLikelihood needs a synchronous Denoiser (onnxDenoiser in Node, or the tfjs model)',
      );
    }) satisfies Denoiser['predict'],
  });
  return denoiser;
}

/** The facts of a tfjs network, as `denoiserInfo` gives them for its exported file. */
export function networkInfo(net: Mlp | UNet): DenoiserInfo {
  const pre = net.config.preconditioning;
  return {
    prediction: net.prediction,
    shape: net.shape,
    ...(net.numClasses !== undefined && net.numClasses > 0 ? { numClasses: net.numClasses } : {}),
    ...(pre ? { sigmaData: pre.sigmaData } : {}),
  };
}

/** A network, or the bytes of an exported denoiser graph. */
export type DenoiserSource = Mlp | UNet | Uint8Array | ArrayBuffer;

/**
 * The `OnnxAsyncDenoiser` of `source` on the ONNX Runtime `ort`: a tfjs network is exported on first
 * use (any batch size); a file runs at the batch sizes it was exported for (any, unless exported with
 * a fixed `batchSize`), described by its doc-string config or by `given`.
 */
export function createAsyncDenoiser(
  ort: OrtModule,
  source: DenoiserSource,
  sessionOptions: Record<string, unknown>,
  given: Partial<DenoiserInfo> = {},
): OnnxAsyncDenoiser {
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const bytes = source instanceof Uint8Array ? source : new Uint8Array(source);
    const file = readOnnxInfo(bytes);
    const info = denoiserInfo(file, given);
    // -1: symbolic (dim_param) or unknown; any batch size is fed and ONNX Runtime checks it.
    const dim0 = file.inputs.find((i) => i.name === 'x')!.dims[0];
    const batch = dim0 !== undefined && dim0 > 0 ? dim0 : undefined;
    const net = new AsyncOnnxNetwork(
      ort,
      { bytes, batch, inputs: file.inputs.map((i) => i.name) },
      sessionOptions,
      info.numClasses,
    );
    return asyncDenoiser(net, info);
  }
  const isNetwork =
    source != null &&
    typeof source === 'object' &&
    'config' in source &&
    (source.config.kind === 'mlp' || source.config.kind === 'unet');
  if (!isNetwork) {
    throw new OnnxError(
      'expected a Diffuse MLP or U-Net, or the bytes of an .onnx file (Uint8Array / ArrayBuffer)',
    );
  }
  const info = { ...networkInfo(source), ...given };
  return asyncDenoiser(
    new AsyncOnnxNetwork(ort, { net: source }, sessionOptions, info.numClasses),
    info,
  );
}
