/**
 * The networks the throughput, training and peer suites measure, behind one small adapter.
 *
 * The MLP denoiser (4 hidden layers of 256, SiLU) and the MNIST U-Net come from `@diffuse/models`.
 * Until that package ships its MLP, the app measures a STAND-IN MLP built here from raw tf ops with
 * the same layer sizes; every row it produces carries `source: "stand-in"` and the report says so.
 */

import type { Denoiser } from '@diffuse/models';
import * as models from '@diffuse/models';
import type { NoiseLevel, Scalar } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';

export type ModelName = 'mlp' | 'unet';
export const MODEL_NAMES: ModelName[] = ['mlp', 'unet'];

/** A network under measurement. */
export interface BenchModel {
  name: ModelName;
  /** What it is, for the report (says "stand-in" when it is one). */
  label: string;
  /** `package`: from `@diffuse/models`; `stand-in`: built in the app until the package has it. */
  source: 'package' | 'stand-in';
  /** Shape of one example. */
  dataShape: number[];
  /** Trainable parameters. */
  params: number;
  /** Architecture facts the PyTorch peer mirrors (layer widths, channels). */
  spec: Record<string, unknown>;
  denoiser: Denoiser;
  variables: tf.Variable[];
  dispose(): void;
}

/** Stand-in MLP layer sizes: the 4 hidden layers of 256. */
export const MLP_SPEC = { dataDim: 2, hidden: [256, 256, 256, 256], embedDim: 16 } as const;

function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** logSNR = 2 (log alpha - log sigma), shaped [batch, 1]. */
function logSNRColumn(level: NoiseLevel<Scalar>, batch: number): tf.Tensor {
  const { alpha, sigma } = level;
  const l =
    typeof alpha === 'number' && typeof sigma === 'number'
      ? tf.scalar(2 * (Math.log(alpha) - Math.log(sigma)))
      : tf.mul(2, tf.sub(tf.log(alpha as tf.Tensor | number), tf.log(sigma as tf.Tensor | number)));
  return tf.broadcastTo(tf.reshape(l, [-1, 1]), [batch, 1]);
}

/**
 * STAND-IN MLP denoiser from raw tf ops (the app's own, used only until `@diffuse/models` has one):
 * [x, sin/cos(logSNR * f_j)] -> 4 x (Dense 256, SiLU) -> Dense d, predicting epsilon.
 */
export function standInMlp(seed: number): BenchModel {
  const { dataDim, hidden, embedDim } = MLP_SPEC;
  const freqs = tf.tidy(() => tf.exp(tf.linspace(Math.log(0.05), Math.log(20), embedDim / 2)));
  const widths = [dataDim + embedDim, ...hidden, dataDim];
  const variables: tf.Variable[] = [];
  const layers: { w: tf.Variable; b: tf.Variable }[] = [];
  for (let i = 0; i + 1 < widths.length; i++) {
    const fanIn = widths[i]!;
    const fanOut = widths[i + 1]!;
    const w = tf.variable(
      tf.randomNormal([fanIn, fanOut], 0, 1 / Math.sqrt(fanIn), 'float32', seed + i),
    );
    const b = tf.variable(tf.zeros([fanOut]));
    layers.push({ w, b });
    variables.push(w, b);
  }
  const denoiser: Denoiser = {
    prediction: 'epsilon',
    shape: [dataDim],
    predict(x, level) {
      return tf.tidy(() => {
        const batch = x.shape[0]!;
        const phase = tf.mul(logSNRColumn(level, batch), tf.reshape(freqs, [1, -1]));
        let h = tf.concat([x, tf.sin(phase), tf.cos(phase)], 1);
        layers.forEach(({ w, b }, i) => {
          h = tf.add(tf.matMul(h, w), b);
          if (i + 1 < layers.length) h = silu(h);
        });
        return h;
      });
    },
  };
  return {
    name: 'mlp',
    label:
      'MLP denoiser 4x256 SiLU (STAND-IN built from raw tf ops: @diffuse/models has no MLP yet)',
    source: 'stand-in',
    dataShape: [dataDim],
    params: variables.reduce((n, v) => n + v.size, 0),
    spec: { kind: 'standin-mlp', ...MLP_SPEC, timeEmbedding: 'sin/cos(logSNR * f), 8 frequencies' },
    denoiser,
    variables,
    dispose() {
      freqs.dispose();
      for (const v of variables) v.dispose();
    },
  };
}

/** The benchmark's MLP: `Mlp` of @diffuse/models with width 256 and 2 residual blocks (4 hidden 256x256 layers). */
export const MLP_CONFIG = { dim: 2, width: 256, depth: 2 } as const;
/** The benchmark's MNIST U-Net: `UNet` of @diffuse/models, 28x28x1, channels 32/64/128 (otherwise its defaults). */
export const UNET_CONFIG = {
  imageShape: [28, 28, 1],
  channels: 32,
  channelMults: [1, 2, 4],
} as const;

/** What the app needs of a @diffuse/models network (typed here so the app builds before the package has them). */
interface PackageNetwork extends Denoiser {
  readonly config: Record<string, unknown> & { kind: string };
  readonly params: tf.Variable[];
  readonly numParams: number;
  readonly shape: readonly number[];
  dispose(): void;
}
type NetworkCtor = new (config: unknown, options?: { seed?: number }) => PackageNetwork;
type ConfigFn = (c: Record<string, unknown>) => Record<string, unknown>;

/** The network constructors @diffuse/models exports in this build (undefined before it has them). */
function packageNetwork(name: ModelName): { ctor: NetworkCtor; config: ConfigFn } | undefined {
  const m = models as unknown as Record<string, unknown>;
  const ctor = m[name === 'mlp' ? 'Mlp' : 'UNet'];
  const config = m[name === 'mlp' ? 'mlpConfig' : 'unetConfig'];
  return typeof ctor === 'function' && typeof config === 'function'
    ? { ctor: ctor as NetworkCtor, config: config as ConfigFn }
    : undefined;
}

/** Which source each model comes from in this build. */
export function modelSource(name: ModelName): 'package' | 'stand-in' | 'unavailable' {
  if (packageNetwork(name)) return 'package';
  return name === 'mlp' ? 'stand-in' : 'unavailable';
}

function fromPackage(name: ModelName, seed: number): BenchModel | undefined {
  const p = packageNetwork(name);
  if (p === undefined) return undefined;
  const config = p.config(
    name === 'mlp'
      ? { ...MLP_CONFIG }
      : {
          ...UNET_CONFIG,
          imageShape: [...UNET_CONFIG.imageShape],
          channelMults: [...UNET_CONFIG.channelMults],
        },
  );
  const net = new p.ctor(config, { seed });
  const c = net.config;
  const label =
    name === 'mlp'
      ? `@diffuse/models Mlp (width ${c.width}, ${c.depth} residual blocks = ${2 * Number(c.depth)} hidden ${c.width}x${c.width} layers, SiLU, embed ${c.embedDim})`
      : `@diffuse/models UNet (28x28x1, channels ${(c.channelMults as number[]).map((k) => k * Number(c.channels)).join('/')}, ${c.numResBlocks} res block(s)/level, attention at ${(c.attentionResolutions as number[]).join(', ')}, GroupNorm ${c.groups})`;
  return {
    name,
    label,
    source: 'package',
    dataShape: [...net.shape],
    params: net.numParams,
    spec: { ...c },
    denoiser: net,
    variables: net.params,
    dispose: () => net.dispose(),
  };
}

/** The models of this build, by name; `unavailable` with the reason when one is not there yet. */
export function createModel(name: ModelName, seed: number): BenchModel | { unavailable: string } {
  const pkg = fromPackage(name, seed);
  if (pkg) return pkg;
  if (name === 'mlp') return standInMlp(seed);
  return { unavailable: '@diffuse/models does not export a U-Net yet' };
}
