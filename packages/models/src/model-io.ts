/**
 * Saving and loading networks: weights as safetensors (readable by any safetensors tool; tensor names
 * are the parameter paths), the config as JSON beside them and, for self-contained files, also in the
 * safetensors `__metadata__` under "diffuse.config". Browser-safe; see `@diffuse/models/node` for files.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ModelError } from './errors.js';
import { createModel, type Model, type ModelConfig } from './networks.js';
import { parseSafetensors, rawToTensor, SafetensorsError, saveTensors } from './safetensors.js';

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

/**
 * Rebuilds a model from `saveModel`'s output (or from safetensors bytes alone, reading the config
 * from their metadata). Every parameter must be present with its exact shape, and nothing else.
 *
 * @example
 * const net = loadModel({ config: JSON.parse(configJson), weights: bytes });
 */
export function loadModel(saved: { config?: ModelConfig; weights: Uint8Array }) {
  const file = parseSafetensors(saved.weights);
  let config = saved.config;
  if (config === undefined) {
    const text = file.metadata[CONFIG_KEY];
    if (text === undefined)
      throw new ModelError(`no config given and the weights have no '${CONFIG_KEY}' metadata`);
    try {
      config = JSON.parse(text) as ModelConfig;
    } catch {
      throw new ModelError(`'${CONFIG_KEY}' metadata is not valid JSON`);
    }
  }
  const model = createModel(config, { initialize: false });
  try {
    const expected = new Set<string>();
    for (const [name, v] of model.namedParams()) {
      expected.add(name);
      const raw = file.tensors.get(name);
      if (raw === undefined)
        throw new ModelError(`weights lack parameter '${name}' [${v.shape.join(', ')}]`);
      if (raw.shape.length !== v.shape.length || raw.shape.some((d, i) => d !== v.shape[i])) {
        throw new ModelError(
          `parameter '${name}' has shape [${raw.shape.join(', ')}] in the file, expected [${v.shape.join(', ')}]`,
        );
      }
      if (
        raw.dtype !== 'F32' &&
        raw.dtype !== 'F16' &&
        raw.dtype !== 'BF16' &&
        raw.dtype !== 'F64'
      ) {
        throw new SafetensorsError(
          'unsupported_dtype',
          `parameter '${name}' has dtype ${raw.dtype}, expected a float type`,
        );
      }
      const t = rawToTensor(raw, name);
      v.assign(t);
      t.dispose();
    }
    for (const name of file.tensors.keys()) {
      if (!expected.has(name))
        throw new ModelError(
          `weights hold '${name}', which this ${config.kind} config has no parameter for`,
        );
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * Copies every parameter value of `source` into `target` (same config).
 *
 * @example
 * const evalNet = createModel(net.config); copyWeights(net, evalNet);
 */
export function copyWeights(source: Model, target: Model): void {
  const a = source.params;
  const b = target.params;
  if (a.length !== b.length || a.some((v, i) => !tf.util.arraysEqual(v.shape, b[i]!.shape))) {
    throw new ModelError('copyWeights: the two models have different parameters');
  }
  a.forEach((v, i) => {
    b[i]!.assign(v);
  });
}
