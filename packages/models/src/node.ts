/**
 * `@diffuse/models/node`: filesystem helpers for Node (kept out of the browser-safe main entry).
 * A model is saved as `<path>.safetensors` (weights) and `<path>.json` (config), each written
 * atomically (temporary file + rename), so a crash mid-save leaves any previous file intact.
 *
 * @packageDocumentation
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { loadModel, saveModel } from './model-io.js';
import type { Model, ModelConfig } from './networks.js';

/**
 * Writes `data` to `path` atomically: to a temporary file beside it, then rename (atomic on POSIX).
 *
 * @example
 * await writeFileAtomic('out/model.json', '{}');
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Saves a model as `<base>.safetensors` and `<base>.json`.
 *
 * @example
 * await saveModelFiles(net, 'weights/mixture-mlp');
 */
export async function saveModelFiles(
  model: Model,
  base: string,
  metadata: Record<string, string> = {},
): Promise<void> {
  const { config, weights } = await saveModel(model, metadata);
  await writeFileAtomic(`${base}.safetensors`, weights);
  await writeFileAtomic(`${base}.json`, `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * Loads a model saved by `saveModelFiles`.
 *
 * @example
 * const net = await loadModelFiles('weights/mixture-mlp');
 */
export async function loadModelFiles(base: string) {
  const [weights, json] = await Promise.all([
    readFile(`${base}.safetensors`),
    readFile(`${base}.json`, 'utf8'),
  ]);
  const config = JSON.parse(json) as ModelConfig;
  return loadModel({
    config,
    weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength),
  });
}
