/**
 * Saving and loading networks: weights as safetensors (readable by any safetensors tool; tensor names
 * are the parameter paths), the config as JSON beside them and, for self-contained files, also in the
 * safetensors `__metadata__` under "diffuse.config". Browser-safe; see `@diffuse/models/node` for files.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ModelConfigError, ModelError } from './errors.js';
import {
  createModel,
  type Model,
  type ModelConfig,
  modelParameterShapes,
  validateModelConfig,
} from './networks.js';
import {
  parseSafetensors,
  rawToTensor,
  SafetensorsError,
  type SafetensorsFile,
  saveTensors,
} from './safetensors.js';

/** A saved model: its JSON config and its weights as safetensors bytes. */
export interface SavedModel {
  config: ModelConfig;
  weights: Uint8Array;
}

const CONFIG_KEY = 'diffuse.config';

/**
 * Serialises a model: `{ config, weights }` with the weights in safetensors format. Reads the
 * parameters back asynchronously.
 *
 * @example
 * const saved = await saveModel(net);
 * const copy = loadModel(saved); // identical outputs
 */
export async function saveModel(
  model: Model,
  metadata: Record<string, string> = {},
): Promise<SavedModel> {
  const config = JSON.parse(JSON.stringify(model.config)) as ModelConfig;
  const weights = await saveTensors(new Map(model.namedParams()), {
    ...metadata,
    format: 'diffuse',
    [CONFIG_KEY]: JSON.stringify(config),
  });
  return { config, weights };
}

/** Options of `loadModel` and `loadModelFiles`. */
export interface LoadOptions {
  /**
   * Most scalar parameters the (untrusted) config may imply (default `DEFAULT_MAX_PARAMS`: 100 M,
   * 400 MB of float32). Checked from the config alone, before anything is allocated.
   */
  maxParams?: number;
  /** Largest activation one example may need (default 1 GiB; see `CreateOptions`). */
  maxActivationBytes?: number;
}

const FLOAT_DTYPES: readonly string[] = ['F32', 'F16', 'BF16', 'F64'];

/**
 * Rebuilds a model from `saveModel`'s output (or from safetensors bytes alone, reading the config
 * from their metadata). Nothing in the file is trusted, and nothing is allocated before all of it
 * has been checked: the bytes are parsed by the hardened `parseSafetensors`; the config is validated
 * (`validateModelConfig`: types, ranges, known keys) and its parameter list is computed without
 * allocating, within the `maxParams` budget (`modelParameterShapes`); the file's tensor list must
 * then be exactly that list (every name, shape and a float dtype). Only then is the network built.
 * Errors: `SafetensorsError` (bytes), `ModelConfigError` (config or budget, naming the field),
 * `ModelError` (tensors that do not match the config).
 *
 * @example
 * const net = loadModel({ config: JSON.parse(configJson), weights: bytes });
 */
export function loadModel(
  saved: { config?: ModelConfig; weights: Uint8Array },
  options: LoadOptions = {},
) {
  if (saved === null || typeof saved !== 'object')
    throw new ModelError(`loadModel expects { weights, config? }, got ${String(saved)}`);
  if (!(saved.weights instanceof Uint8Array))
    throw new ModelError('loadModel: weights must be a Uint8Array of safetensors bytes');
  const file = parseSafetensors(saved.weights);
  let raw: unknown = saved.config;
  if (raw === undefined) {
    const text = file.metadata[CONFIG_KEY];
    if (text === undefined)
      throw new ModelError(`no config given and the weights have no '${CONFIG_KEY}' metadata`);
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new ModelConfigError(
        CONFIG_KEY,
        text.slice(0, 60),
        `'${CONFIG_KEY}' metadata is not valid JSON (${(e as Error).message})`,
      );
    }
  }
  const config = validateModelConfig(raw);
  const expected = modelParameterShapes(config, options);
  checkTensorList(file, expected, config.kind);
  const model = createModel(config, {
    initialize: false,
    maxParams: options.maxParams,
    maxActivationBytes: options.maxActivationBytes,
  });
  try {
    for (const [name, v] of model.namedParams()) {
      const t = rawToTensor(file.tensors.get(name)!, name);
      v.assign(t);
      t.dispose();
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** The file's tensors must be exactly the config's parameters: names, shapes, float dtypes. */
function checkTensorList(
  file: SafetensorsFile,
  expected: [string, number[]][],
  kind: string,
): void {
  const names = new Set<string>();
  for (const [name, shape] of expected) {
    names.add(name);
    const raw = file.tensors.get(name);
    if (raw === undefined)
      throw new ModelError(`weights lack parameter '${name}' [${shape.join(', ')}]`);
    if (!tf.util.arraysEqual(raw.shape, shape)) {
      throw new ModelError(
        `parameter '${name}' has shape [${raw.shape.join(', ')}] in the file, expected [${shape.join(', ')}]`,
      );
    }
    if (!FLOAT_DTYPES.includes(raw.dtype)) {
      throw new SafetensorsError(
        'unsupported_dtype',
        `parameter '${name}' has dtype ${raw.dtype}, expected a float type`,
      );
    }
  }
  for (const name of file.tensors.keys()) {
    if (!names.has(name))
      throw new ModelError(
        `weights hold '${name}', which this ${kind} config has no parameter for`,
      );
  }
}

/**
 * Copies every parameter value of `source` into `target` (same config). A mismatch names the first
 * differing parameter and both shapes.
 *
 * @example
 * const evalNet = createModel(net.config); copyWeights(net, evalNet);
 */
export function copyWeights(source: Model, target: Model): void {
  const a = source.namedParams();
  const b = target.namedParams();
  const describe = (p: [string, tf.Variable] | undefined) =>
    p === undefined ? 'nothing' : `'${p[0]}' [${p[1].shape.join(', ')}]`;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const [pa, pb] = [a[i], b[i]];
    if (
      pa === undefined ||
      pb === undefined ||
      pa[0] !== pb[0] ||
      !tf.util.arraysEqual(pa[1].shape, pb[1].shape)
    ) {
      throw new ModelError(
        `copyWeights: the models differ at parameter ${i}: the source has ${describe(pa)}, the target ${describe(pb)} (source ${a.length} parameters, target ${b.length})`,
      );
    }
  }
  a.forEach(([, v], i) => {
    b[i]![1].assign(v);
  });
}
