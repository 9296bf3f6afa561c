/**
 * Building a diffusers model from its files (browser-safe: bytes in, model out). The config is
 * validated and the module tree built without tensors; then every tensor of the safetensors file(s)
 * (one file or the shards of a sharded checkpoint, parsed by the one hardened parser of
 * `../safetensors.ts`) is checked against the tree's keys and shapes: a missing, unexpected,
 * mis-shaped or non-float tensor is a `DiffusersWeightsError` naming the key (and both shapes)
 * before anything is allocated. Then each tensor is converted on its own (F32, F16, BF16 or F64 to
 * float32, transposed to tfjs' layout), so no second copy of the whole file is ever made.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type BudgetOptions, checkActivationBudget, paramBudget } from '../budget.js';
import { DiffusersConfigError, DiffusersWeightsError } from '../errors.js';
import { parseSafetensors, type RawTensor, rawToTensor } from '../safetensors.js';
import { type ConfigOptions, type DiffusersConfig, parseDiffusersConfig } from './config.js';
import { AutoencoderKL, type DiffusersModel, UNet2DConditionModel, UNet2DModel } from './models.js';
import { diffusersBudgetError, type Slot } from './modules.js';

/**
 * What `diffusersModelFromFiles` takes: the `config.json` (text or parsed) and the weights, with the
 * parser's options and the size budget (`maxParams`, `maxActivationBytes`; see `createDiffusersModel`).
 */
export interface DiffusersFiles extends ConfigOptions, BudgetOptions {
  config: object | string;
  /** The `.safetensors` bytes, or the bytes of every shard of a sharded checkpoint. */
  weights: Uint8Array | Uint8Array[];
  /**
   * The sharded checkpoint's `diffusion_pytorch_model.safetensors.index.json` (text or parsed):
   * when given, every key it lists must be in the shards.
   */
  index?: object | string;
}

/** Options of `createDiffusersModel`: the toolkit's size budget (`maxParams`, `maxActivationBytes`). */
export type DiffusersBuildOptions = BudgetOptions;

const sides = (size: number | [number, number]): [number, number] =>
  typeof size === 'number' ? [size, size] : size;

/**
 * The largest single activation of one example a diffusers config implies at its `sample_size`, in
 * float32 elements (0 without a `sample_size`: the input then fixes it), with the key that drives it.
 * Per resolution level l (side ceil(H / 2^l)): the feature map (a UNet's up path concatenates the
 * skip: ch_l + ch_{l+1} channels) and, where the level has self-attention (an Attn / CrossAttn block
 * or the mid block), the heads x (H_l W_l)^2 attention scores. Cross-attention (tokens x H_l W_l)
 * and the heads of blocks without a head count (1) are left out: this is a lower bound, tight for
 * the largest terms.
 */
export function largestDiffusersActivation(parsed: DiffusersConfig): {
  elements: number;
  field: string;
  value: unknown;
} {
  const c = parsed.config;
  if (c.sample_size === null) return { elements: 0, field: 'sample_size', value: null };
  const [H, W] = sides(c.sample_size);
  const ch = c.block_out_channels;
  const n = ch.length;
  const unet = parsed.className !== 'AutoencoderKL';
  const downTypes = c.down_block_types as readonly string[];
  const upTypes = c.up_block_types as readonly string[];
  // self-attention heads at level l (0: none)
  const heads = (l: number): number => {
    const attended = downTypes[l]?.includes('Attn') || upTypes[n - 1 - l]?.includes('Attn') ? 1 : 0;
    const mid =
      l === n - 1 &&
      (parsed.className === 'UNet2DModel'
        ? parsed.config.mid_block_type !== null && parsed.config.add_attention
        : parsed.className === 'UNet2DConditionModel'
          ? parsed.config.mid_block_type === 'UNetMidBlock2DCrossAttn'
          : parsed.config.mid_block_add_attention);
    if (!attended && !mid) return 0;
    if (parsed.className === 'UNet2DModel') {
      const dim = parsed.config.attention_head_dim;
      return dim === null ? 1 : Math.max(1, Math.floor(ch[l]! / dim));
    }
    if (parsed.className === 'UNet2DConditionModel') {
      const h = parsed.config.attention_head_dim; // diffusers' quirk: the number of heads
      return Array.isArray(h) ? (h[l] ?? 1) : h;
    }
    return 1;
  };
  let best = { elements: 0, field: 'sample_size', value: c.sample_size as unknown };
  for (let l = 0; l < n; l++) {
    const hw = Math.ceil(H / 2 ** l) * Math.ceil(W / 2 ** l);
    const map = hw * (unet ? ch[l]! + ch[Math.min(l + 1, n - 1)]! : ch[l]!);
    if (map > best.elements) best = { elements: map, field: 'sample_size', value: c.sample_size };
    const scores = heads(l) * hw * hw;
    if (scores > best.elements)
      best = { elements: scores, field: 'sample_size', value: c.sample_size };
  }
  return best;
}

function buildDiffusersModel(
  parsed: DiffusersConfig,
  options: DiffusersBuildOptions,
  cap?: { maxParams: number; maxTensors: number; source: string },
): DiffusersModel {
  if (options === null || typeof options !== 'object')
    throw new DiffusersConfigError('options', options, 'build options must be an object');
  checkActivationBudget(largestDiffusersActivation(parsed), options, diffusersBudgetError);
  const budget = paramBudget(parsed.className, options, cap, diffusersBudgetError);
  switch (parsed.className) {
    case 'UNet2DModel':
      return new UNet2DModel(parsed.config, budget);
    case 'UNet2DConditionModel':
      return new UNet2DConditionModel(parsed.config, budget);
    case 'AutoencoderKL':
      return new AutoencoderKL(parsed.config, budget);
  }
}

/**
 * Builds the (empty) model a parsed config describes, within the toolkit's size budget checked from
 * the config alone (`maxParams`, default `DEFAULT_MAX_PARAMS` = 100 M; `maxActivationBytes`, default
 * 1 GiB for the largest activation of one example at the config's `sample_size`, see
 * `largestDiffusersActivation`): over either, a `DiffusersConfigError` whose key names the option
 * or `sample_size`, before the module tree grows. Raise them for large checkpoints (SD 1.x: 860 M).
 *
 * @example
 * const unet = createDiffusersModel(parseDiffusersConfig(configJson)); // no weights yet
 * const sd = createDiffusersModel(parseDiffusersConfig(sdJson), { maxParams: 1e9 });
 */
export function createDiffusersModel(
  parsed: DiffusersConfig,
  options: DiffusersBuildOptions = {},
): DiffusersModel {
  return buildDiffusersModel(parsed, options);
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/**
 * Old checkpoints (e.g. google/ddpm-*) name the self-attention of `UNetMidBlock2D`/`Attn*` blocks
 * `query`, `key`, `value`, `proj_attn`; diffusers renames them on load
 * (`_convert_deprecated_attention_blocks`). The same mapping, applied to keys the model lacks.
 */
const LEGACY_ATTENTION: [string, string][] = [
  ['.query.', '.to_q.'],
  ['.key.', '.to_k.'],
  ['.value.', '.to_v.'],
  ['.proj_attn.', '.to_out.0.'],
];

function modernName(name: string, expected: Map<string, Slot>): string {
  if (expected.has(name)) return name;
  for (const [old, now] of LEGACY_ATTENTION) {
    const i = name.lastIndexOf(old);
    if (i >= 0) {
      const renamed = `${name.slice(0, i)}${now}${name.slice(i + old.length)}`;
      if (expected.has(renamed)) return renamed;
    }
  }
  return name;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Checks the tensors of `files` against the model's parameters; returns the tensor for each key.
 * Allocates nothing.
 */
function matchTensors(
  slots: Map<string, Slot>,
  files: { tensors: Map<string, RawTensor> }[],
  className: string,
): Map<string, RawTensor> {
  const found = new Map<string, RawTensor>();
  for (const file of files) {
    for (const [name, raw] of file.tensors) {
      const key = modernName(name, slots);
      if (found.has(key))
        throw new DiffusersWeightsError(key, `tensor '${key}' appears twice in the weights`);
      const slot = slots.get(key);
      if (slot === undefined)
        throw new DiffusersWeightsError(
          key,
          `the weights hold '${name}' ${shapeText(raw.shape)}, which this ${className} config has no parameter for`,
          { actual: raw.shape },
        );
      if (!FLOAT_DTYPES.has(raw.dtype))
        throw new DiffusersWeightsError(
          key,
          `tensor '${name}' has dtype ${raw.dtype}; expected F32, F16, BF16 or F64`,
          { expected: slot.shape, actual: raw.shape },
        );
      if (raw.shape.length !== slot.shape.length || raw.shape.some((d, i) => d !== slot.shape[i]))
        throw new DiffusersWeightsError(
          key,
          `tensor '${name}' has shape ${shapeText(raw.shape)} in the weights, the ${className} config needs ${shapeText(slot.shape)}`,
          { expected: slot.shape, actual: raw.shape },
        );
      found.set(key, raw);
    }
  }
  for (const slot of slots.values())
    if (!found.has(slot.name))
      throw new DiffusersWeightsError(
        slot.name,
        `the weights lack '${slot.name}' ${shapeText(slot.shape)}`,
        { expected: slot.shape },
      );
  return found;
}

/** One tensor converted to float32 in tfjs' layout. */
function toSlotTensor(raw: RawTensor, slot: Slot): tf.Tensor {
  return tf.tidy(() => {
    const t = rawToTensor(raw, slot.name);
    if (slot.layout === 'linear') return tf.transpose(t, [1, 0]);
    if (slot.layout === 'conv') return tf.transpose(t, [2, 3, 1, 0]);
    return t;
  });
}

function indexKeys(index: object | string): string[] {
  let raw: unknown = index;
  if (typeof index === 'string') {
    try {
      raw = JSON.parse(index);
    } catch (e) {
      throw new DiffusersWeightsError(
        'index',
        `the index json is not valid JSON (${(e as Error).message})`,
      );
    }
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map))
    throw new DiffusersWeightsError('weight_map', 'the index json has no weight_map object');
  return Object.keys(map as object);
}

/**
 * A diffusers model (`UNet2DModel`, `UNet2DConditionModel` or `AutoencoderKL`, from the config's
 * `_class_name`) from its `config.json` and safetensors bytes (one file, or every shard). Throws a
 * `DiffusersConfigError` for a config option this port does not implement and a
 * `DiffusersWeightsError` for weights that do not fit, both before allocating any tensor.
 *
 * @example
 * const [config, weights] = await Promise.all([
 *   fetch('unet/config.json').then((r) => r.text()),
 *   fetch('unet/diffusion_pytorch_model.safetensors').then((r) => r.arrayBuffer()),
 * ]);
 * const unet = diffusersModelFromFiles({ config, weights: new Uint8Array(weights) });
 */
export function diffusersModelFromFiles(files: DiffusersFiles): DiffusersModel {
  const parsed = parseDiffusersConfig(files.config, {
    strict: files.strict,
    onWarning: files.onWarning,
  });
  const shards = Array.isArray(files.weights) ? files.weights : [files.weights];
  if (shards.length === 0) throw new DiffusersWeightsError('weights', 'no weight files given');
  const parsedShards = shards.map((bytes) => parseSafetensors(bytes));
  // The files bound the network: a config implying far more parameters than they hold (twice, plus
  // slack, so that a few missing tensors still get their precise error below) stops while building.
  let maxParams = 0;
  let maxTensors = 0;
  for (const f of parsedShards)
    for (const raw of f.tensors.values()) {
      maxParams += raw.shape.reduce((a, b) => a * b, 1);
      maxTensors += 1;
    }
  const model = buildDiffusersModel(
    parsed,
    { maxParams: files.maxParams, maxActivationBytes: files.maxActivationBytes },
    {
      maxParams: 2 * maxParams + 1_000_000,
      maxTensors: 2 * maxTensors + 1_000,
      source: 'the weights hold',
    },
  );
  const slots = model.registry.slots;
  const tensors = matchTensors(slots, parsedShards, parsed.className);
  if (files.index !== undefined) {
    const present = new Set<string>();
    for (const f of parsedShards) for (const k of f.tensors.keys()) present.add(k);
    for (const k of indexKeys(files.index))
      if (!present.has(k))
        throw new DiffusersWeightsError(k, `the index lists '${k}', which no shard holds`);
  }
  try {
    for (const [key, raw] of tensors) {
      const slot = slots.get(key)!;
      slot.value = toSlotTensor(raw, slot);
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
