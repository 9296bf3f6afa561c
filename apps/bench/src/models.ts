/**
 * The networks the throughput, training and peer suites measure, behind one small adapter: the MLP
 * denoiser and the MNIST U-Net of `@diffuse/models`. (Until that package had them, the app measured a
 * clearly labelled stand-in MLP; rows keep a `modelSource` field for that reason.)
 */
import {
  type AsyncDenoiser,
  type Denoiser,
  Mlp,
  mlpConfig,
  UNet,
  unetConfig,
} from '@diffuse/models';
import type * as tf from '@tensorflow/tfjs-core';

export type ModelName = 'mlp' | 'unet';
export const MODEL_NAMES: ModelName[] = ['mlp', 'unet'];

/** A network under measurement. */
export interface BenchModel {
  name: ModelName;
  /** What it is, for the report. */
  label: string;
  /** `package`: from `@diffuse/models` (`stand-in`: built in the app, before the package had it). */
  source: 'package' | 'stand-in';
  /** Shape of one example. */
  dataShape: number[];
  /** Trainable parameters. */
  params: number;
  /** Architecture (the network's JSON config) that the PyTorch peer mirrors. */
  spec: Record<string, unknown>;
  denoiser: Denoiser;
  /**
   * Set when the runtime under measurement is asynchronous (ONNX Runtime on the main thread): the
   * throughput suite calls this instead of `denoiser` (which stays the tfjs model, for training).
   */
  asyncDenoiser?: AsyncDenoiser;
  /** The tfjs network itself (what `@diffuse/onnx` exports). */
  net: Mlp | UNet;
  variables: tf.Variable[];
  dispose(): void;
}

/** The benchmark's MLP: `Mlp` of @diffuse/models with width 256 and 2 residual blocks (4 hidden 256x256 layers). */
export const MLP_CONFIG = { dim: 2, width: 256, depth: 2 } as const;
/** The benchmark's MNIST U-Net: `UNet` of @diffuse/models, 28x28x1, channels 32/64/128 (otherwise its defaults). */
export const UNET_CONFIG = {
  imageShape: [28, 28, 1],
  channels: 32,
  channelMults: [1, 2, 4],
} as const;

/** Creates the benchmark's `name` network of @diffuse/models with seeded weights. */
export function createModel(name: ModelName, seed: number): BenchModel {
  let net: Mlp | UNet;
  let label: string;
  if (name === 'mlp') {
    const m = new Mlp(mlpConfig({ ...MLP_CONFIG }), { seed });
    const c = m.config;
    label = `@diffuse/models Mlp (width ${c.width}, ${c.depth} residual blocks = ${2 * c.depth} hidden ${c.width}x${c.width} layers, SiLU, embed ${c.embedDim})`;
    net = m;
  } else {
    const u = new UNet(
      unetConfig({
        ...UNET_CONFIG,
        imageShape: [...UNET_CONFIG.imageShape],
        channelMults: [...UNET_CONFIG.channelMults],
      }),
      { seed },
    );
    const c = u.config;
    label = `@diffuse/models UNet (28x28x1, channels ${c.channelMults.map((k) => k * c.channels).join('/')}, ${c.numResBlocks} res block(s)/level, attention at ${c.attentionResolutions.join(', ')}, GroupNorm ${c.groups})`;
    net = u;
  }
  return {
    name,
    label,
    source: 'package',
    dataShape: [...net.shape],
    params: net.numParams,
    spec: { ...net.config },
    denoiser: net,
    net,
    variables: net.params,
    dispose: () => net.dispose(),
  };
}
