/**
 * ONNX export of diffusers checkpoints (`UNet2DModel`, `UNet2DConditionModel`, `AutoencoderKL` of
 * `@diffuse/models`): the same tracing as `exportOnnx` (the tfjs forward pass, kernel by kernel, no
 * second copy of the architecture), with diffusers' input names and NCHW layout, so ONNX Runtime
 * (Node, or web with wasm / WebGPU) runs the checkpoint.
 */
import type {
  AutoencoderKL,
  DiffusersModel,
  UNet2DConditionModel,
  UNet2DModel,
} from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { OnnxError } from './errors.js';
import { toOnnx } from './onnx-graph.js';
import { type TracedGraph, traceKernels } from './trace.js';

/** Options of `exportDiffusersOnnx`. */
export interface DiffusersExportOptions {
  /** Fix the batch size (default: symbolic `batch` on axis 0 of every input and output). */
  batchSize?: number;
  /** Spatial size of `sample` (UNets) or of the image (VAE encode); default the config's `sample_size`. */
  height?: number;
  width?: number;
  /** Number of text tokens of `encoder_hidden_states` (UNet2DConditionModel; default 77). */
  tokens?: number;
  /** For an AutoencoderKL: `decode` (z -> image, default) or `encode` (image -> moments). */
  part?: 'encode' | 'decode';
}

const TRACE_BATCHES = [3, 5, 4] as const;

function size(
  model: UNet2DModel | UNet2DConditionModel | AutoencoderKL,
  o: DiffusersExportOptions,
): [number, number] {
  const s = model.config.sample_size;
  const [h, w] = s === null ? [undefined, undefined] : typeof s === 'number' ? [s, s] : s;
  const height = o.height ?? h;
  const width = o.width ?? w;
  if (height === undefined || width === undefined)
    throw new OnnxError('the config has no sample_size: give height and width');
  return [height, width];
}

interface Traced {
  graph: TracedGraph;
  names: string[];
  output: string;
}

function traceUNet2D(unet: UNet2DModel, b: number, o: DiffusersExportOptions): Traced {
  const c = unet.config;
  if (c.class_embed_type !== null)
    throw new OnnxError(
      `UNet2DModel class_embed_type '${c.class_embed_type}' is not exported (class tables are)`,
    );
  const [h, w] = size(unet, o);
  const inputs = [tf.zeros([b, c.in_channels, h, w]), tf.fill([b], 500)];
  const names = ['sample', 'timestep'];
  if (c.num_class_embeds !== null) {
    inputs.push(tf.zeros([b], 'int32'));
    names.push('class_labels');
  }
  try {
    const graph = traceKernels(
      (sample, timestep, classLabels) =>
        unet.forward({ sample: sample!, timestep: timestep!, classLabels }),
      inputs,
    );
    return { graph, names, output: 'out_sample' };
  } finally {
    tf.dispose(inputs);
  }
}

function traceUNet2DCondition(
  unet: UNet2DConditionModel,
  b: number,
  o: DiffusersExportOptions,
): Traced {
  const c = unet.config;
  if (c.class_embed_type !== null || c.num_class_embeds !== null)
    throw new OnnxError('UNet2DConditionModel class embeddings are not exported');
  const [h, w] = size(unet, o);
  const dim =
    c.encoder_hid_dim ??
    (Array.isArray(c.cross_attention_dim) ? c.cross_attention_dim[0]! : c.cross_attention_dim);
  const inputs = [
    tf.zeros([b, c.in_channels, h, w]),
    tf.fill([b], 500),
    tf.zeros([b, o.tokens ?? 77, dim]),
  ];
  const names = ['sample', 'timestep', 'encoder_hidden_states'];
  const textTime = c.addition_embed_type === 'text_time';
  if (textTime) {
    const n = 6;
    const d = c.projection_class_embeddings_input_dim! - n * c.addition_time_embed_dim!;
    inputs.push(tf.zeros([b, d]), tf.ones([b, n]));
    names.push('text_embeds', 'time_ids');
  }
  if (c.time_cond_proj_dim !== null) {
    inputs.push(tf.zeros([b, c.time_cond_proj_dim]));
    names.push('timestep_cond');
  }
  try {
    const graph = traceKernels((sample, timestep, ehs, ...rest) => {
      const added = textTime ? { text_embeds: rest[0]!, time_ids: rest[1]! } : undefined;
      const timestepCond = c.time_cond_proj_dim !== null ? rest[textTime ? 2 : 0] : undefined;
      return unet.forward({
        sample: sample!,
        timestep: timestep!,
        encoderHiddenStates: ehs!,
        addedCondKwargs: added,
        timestepCond,
      });
    }, inputs);
    return { graph, names, output: 'out_sample' };
  } finally {
    tf.dispose(inputs);
  }
}

function traceVae(vae: AutoencoderKL, b: number, o: DiffusersExportOptions): Traced {
  const c = vae.config;
  const [h, w] = size(vae, o);
  const f = vae.downsampleFactor;
  if (o.part === 'encode') {
    const x = tf.zeros([b, c.in_channels, h, w]);
    try {
      const graph = traceKernels(
        (img) => {
          const { mean, logvar, std } = vae.encode(img!);
          std.dispose();
          return tf.concat([mean, logvar], 1);
        },
        [x],
      );
      return { graph, names: ['sample'], output: 'moments' };
    } finally {
      x.dispose();
    }
  }
  if (h % f !== 0 || w % f !== 0)
    throw new OnnxError(`height and width must be multiples of the VAE factor ${f}`);
  const z = tf.zeros([b, c.latent_channels, h / f, w / f]);
  try {
    const graph = traceKernels((latents) => vae.decode(latents!), [z]);
    return { graph, names: ['latent_sample'], output: 'sample' };
  } finally {
    z.dispose();
  }
}

function traceAt(model: DiffusersModel, b: number, o: DiffusersExportOptions): Traced {
  switch (model.className) {
    case 'UNet2DModel':
      return traceUNet2D(model, b, o);
    case 'UNet2DConditionModel':
      return traceUNet2DCondition(model, b, o);
    case 'AutoencoderKL':
      return traceVae(model, b, o);
  }
}

/**
 * The ONNX bytes of a diffusers checkpoint, with diffusers' names and NCHW tensors:
 *
 * - `UNet2DModel`: `sample` [b, C, H, W], `timestep` float32 [b] (and `class_labels` int32 [b]) ->
 *   `out_sample`.
 * - `UNet2DConditionModel`: `sample`, `timestep`, `encoder_hidden_states` [b, tokens, dim] (and
 *   `text_embeds`, `time_ids` for SDXL, `timestep_cond`) -> `out_sample`.
 * - `AutoencoderKL`: `decode`: `latent_sample` -> `sample`; `encode`: `sample` -> `moments`
 *   ([mean, clamped logvar] on the channel axis, diffusers' `DiagonalGaussianDistribution` input).
 *
 * The spatial size (and the token count) is fixed at export; the batch is symbolic unless
 * `batchSize` is given.
 *
 * @example
 * writeFileSync('unet.onnx', exportDiffusersOnnx(await loadDiffusersModel('ddpm-cifar10-32/unet')));
 */
export function exportDiffusersOnnx(
  model: DiffusersModel,
  options: DiffusersExportOptions = {},
): Uint8Array {
  const fixed = options.batchSize;
  if (fixed !== undefined && !(Number.isInteger(fixed) && fixed > 0))
    throw new OnnxError(`batchSize must be a positive integer, got ${fixed}`);
  const a = traceAt(model, fixed ?? TRACE_BATCHES[0], options);
  const twins =
    fixed === undefined ? TRACE_BATCHES.slice(1).map((b) => traceAt(model, b, options).graph) : [];
  return toOnnx(a.graph, {
    inputNames: a.names,
    outputName: a.output,
    docString: JSON.stringify({ _class_name: model.className, ...model.config }),
    batchTwins: twins,
  });
}
