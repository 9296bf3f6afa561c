/**
 * `@diffuse/models/node`: filesystem helpers for Node (kept out of the browser-safe main entry).
 *
 * A model is saved as `<base>.safetensors` and `<base>.json`. The safetensors file is the unit of
 * commit: it holds the weights and the config (in its `__metadata__` under "diffuse.config"), is
 * written to `<base>.safetensors.tmp-<pid>-<time>`, flushed (fsync) and renamed over the old file
 * (atomic on POSIX), so after a kill at any moment it is either the old file or the new one, never a
 * mix. `<base>.json` is a readable copy of the config written after it (also atomically); a kill
 * between the two renames leaves the previous JSON beside the new weights, so `loadModelFiles` takes
 * the config from the weights file whenever it has one, and reads `<base>.json` only for weights that
 * do not carry their config (pairs written by other tools: back-compatible). Temporary files left by
 * a writer that died are removed by the next `saveModelFiles` of the same base.
 *
 * @packageDocumentation
 */
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DEFAULT_MAX_PARAMS } from './budget.js';
import { type ConfigOptions, parseDiffusersConfig } from './diffusers/config.js';
import {
  createDiffusersModel,
  type DiffusersBuildOptions,
  diffusersModelFromFiles,
} from './diffusers/load.js';
import type { DiffusersModel } from './diffusers/models.js';
import { DiffusersWeightsError, ModelError } from './errors.js';
import { type LoadOptions, loadModel, saveModel } from './model-io.js';
import type { Model, ModelConfig } from './networks.js';
import { parseSafetensors } from './safetensors.js';

const CONFIG_KEY = 'diffuse.config';
const TMP = /\.tmp-(\d+)-\d+$/;

/**
 * Writes `data` to `path` atomically: to `<path>.tmp-<pid>-<time>` beside it, flushed to disk, then
 * renamed over `path` (atomic on POSIX), then the directory is flushed so the rename survives a power
 * cut. A failure removes the temporary file.
 *
 * @example
 * await writeFileAtomic('out/model.json', '{}');
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    const h = await open(tmp, 'w');
    try {
      await h.writeFile(data);
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDirectory(dirname(path));
}

/**
 * fsync of a directory, so a rename in it survives a power cut (Linux, macOS). Windows cannot open
 * directories, where rename is durable enough: a failure here is not an error.
 */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    /* see above */
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/**
 * Removes `<base>.safetensors.tmp-<pid>-<time>` and `<base>.json.tmp-<pid>-<time>` files whose
 * writer process is gone (a save killed before its rename). Files of live processes are kept (they
 * may be another save in progress). Returns the names removed.
 *
 * @example
 * await removeStaleTemporaries('weights/mixture-mlp'); // ['mixture-mlp.safetensors.tmp-4242-1765152000000']
 */
export async function removeStaleTemporaries(base: string): Promise<string[]> {
  const dir = dirname(base);
  const prefix = basename(base);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(`${prefix}.safetensors.tmp-`) && !name.startsWith(`${prefix}.json.tmp-`))
      continue;
    const m = TMP.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    // this process's own writes clean up after themselves; a live process may be mid-save
    if (pid === process.pid || processAlive(pid)) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Saves a model as `<base>.safetensors` (weights and config: the unit of commit) and `<base>.json`
 * (a readable copy of the config), removing temporary files of earlier saves that were killed.
 * After a kill at any moment, `loadModelFiles(base)` gives the previous model or the new one.
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
  await removeStaleTemporaries(base);
  await writeFileAtomic(`${base}.safetensors`, weights);
  await writeFileAtomic(`${base}.json`, `${JSON.stringify(config, null, 2)}\n`);
}

async function readOrNull(path: string, what: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return null;
    throw new ModelError(`could not read the ${what} ${path}: ${(e as Error).message}`, {
      code: 'MODEL_FILE',
      cause: e,
    });
  }
}

/**
 * Loads a model saved by `saveModelFiles`: the config comes from the weights file's metadata when it
 * has one (the committed unit), else from `<base>.json`. Errors are typed and name the file: a
 * missing `<base>.safetensors`, a `<base>.json` that is not valid JSON (even when not needed: a
 * corrupt file is reported), weights without a config. `options.maxParams` raises the size budget
 * checked before anything is allocated (see `loadModel`).
 *
 * @example
 * const net = await loadModelFiles('weights/mixture-mlp');
 */
export async function loadModelFiles(base: string, options: LoadOptions = {}) {
  const weightsPath = `${base}.safetensors`;
  const jsonPath = `${base}.json`;
  const [buf, json] = await Promise.all([
    readOrNull(weightsPath, 'weights file'),
    readOrNull(jsonPath, 'config file'),
  ]);
  if (buf === null)
    throw new ModelError(`the weights file ${weightsPath} does not exist`, { code: 'MODEL_FILE' });
  const weights = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let fileConfig: unknown;
  if (json !== null) {
    try {
      fileConfig = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
    } catch (e) {
      throw new ModelError(
        `the config file ${jsonPath} is not valid JSON (truncated or corrupt?): ${(e as Error).message}`,
        { code: 'MODEL_FILE', cause: e },
      );
    }
  }
  let embedded: boolean;
  try {
    embedded = parseSafetensors(weights).metadata[CONFIG_KEY] !== undefined;
  } catch (e) {
    throw withFile(e, weightsPath);
  }
  if (!embedded && json === null)
    throw new ModelError(
      `the weights file ${weightsPath} carries no config and ${jsonPath} does not exist`,
      { code: 'MODEL_FILE' },
    );
  try {
    return loadModel(
      embedded ? { weights } : { config: fileConfig as ModelConfig, weights },
      options,
    );
  } catch (e) {
    throw withFile(e, embedded ? weightsPath : `${weightsPath} with ${jsonPath}`);
  }
}

/** The same typed error, its message prefixed with the file it came from. */
function withFile(e: unknown, path: string): unknown {
  if (e instanceof Error && 'code' in e) {
    try {
      e.message = `${path}: ${e.message}`;
    } catch {
      /* a frozen message stays as it is */
    }
  }
  return e;
}

/** Options of `loadDiffusersModel`: the parser's, the size budget's (see `createDiffusersModel`), and: */
export interface LoadDiffusersOptions extends ConfigOptions, DiffusersBuildOptions {
  /**
   * A weights variant such as 'fp16' (`diffusion_pytorch_model.fp16.safetensors`, or the sharded
   * `diffusion_pytorch_model.safetensors.index.fp16.json`). Without it the plain file is read, and
   * a folder holding only the 'fp16' variant falls back to it.
   */
  variant?: string;
}

const WEIGHTS = 'diffusion_pytorch_model';

const asBytes = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/**
 * Loads a diffusers model folder (`config.json` + `diffusion_pytorch_model.safetensors`, a
 * `*.fp16.safetensors` variant, or shards listed in `diffusion_pytorch_model.safetensors.index.json`)
 * as a `UNet2DModel`, `UNet2DConditionModel` or `AutoencoderKL`. Each file is read once; tensors are
 * converted to float32 one at a time.
 *
 * @example
 * const unet = await loadDiffusersModel('models/ddpm-cifar10-32/unet');
 * const out = unet.forward({ sample, timestep: 981 });
 */
export async function loadDiffusersModel(
  folder: string,
  options: LoadDiffusersOptions = {},
): Promise<DiffusersModel> {
  const names = new Set(await readdir(folder));
  const config = await readFile(join(folder, 'config.json'), 'utf8');
  const budget = { maxParams: options.maxParams, maxActivationBytes: options.maxActivationBytes };
  // The config's size budget, checked before any weights file is read (an empty shape tree).
  // Without the caller's maxParams the folder's safetensors bytes bound it (at least one byte per
  // parameter in any safetensors dtype): a real checkpoint loads as it is, a config claiming more
  // than the files could hold stops here.
  let preflightMax = options.maxParams;
  if (preflightMax === undefined) {
    let bytes = 0;
    for (const name of names)
      if (name.endsWith('.safetensors')) bytes += (await stat(join(folder, name))).size;
    preflightMax = Math.max(DEFAULT_MAX_PARAMS, bytes + 1_000_000);
  }
  createDiffusersModel(
    parseDiffusersConfig(config, { strict: options.strict, onWarning: () => {} }),
    { ...budget, maxParams: preflightMax },
  ).dispose();
  const pick = (variant: string | undefined) => {
    const v = variant ? `.${variant}` : '';
    const single = `${WEIGHTS}${v}.safetensors`;
    const index = `${WEIGHTS}.safetensors.index${v}.json`;
    if (names.has(single)) return { single };
    if (names.has(index)) return { index };
    return undefined;
  };
  const found = pick(options.variant) ?? (options.variant === undefined ? pick('fp16') : undefined);
  if (found === undefined)
    throw new DiffusersWeightsError(
      'weights',
      `${folder} holds no ${WEIGHTS}${options.variant ? `.${options.variant}` : ''}.safetensors (nor a sharded index); .bin weights are not read`,
    );
  if (found.single !== undefined)
    return diffusersModelFromFiles({
      config,
      weights: asBytes(await readFile(join(folder, found.single))),
      strict: options.strict,
      onWarning: options.onWarning,
      ...budget,
    });
  const indexText = await readFile(join(folder, found.index!), 'utf8');
  let map: Record<string, unknown>;
  try {
    map = (JSON.parse(indexText) as { weight_map: Record<string, unknown> }).weight_map;
  } catch (e) {
    throw new DiffusersWeightsError(
      'index',
      `${found.index} is not valid JSON (${(e as Error).message})`,
    );
  }
  if (map === null || typeof map !== 'object')
    throw new DiffusersWeightsError('weight_map', `${found.index} has no weight_map object`);
  const shardNames = [...new Set(Object.values(map))];
  for (const name of shardNames)
    if (typeof name !== 'string' || name.includes('/') || name.includes('\\') || !names.has(name))
      throw new DiffusersWeightsError(
        'weight_map',
        `${found.index} names shard ${JSON.stringify(name)}, which is not a file in ${folder}`,
      );
  const weights: Uint8Array[] = [];
  for (const name of shardNames as string[])
    weights.push(asBytes(await readFile(join(folder, name))));
  return diffusersModelFromFiles({
    config,
    weights,
    index: indexText,
    strict: options.strict,
    onWarning: options.onWarning,
    ...budget,
  });
}
