/**
 * Training checkpoints: tensors (parameters, optimizer moments, EMA weights, loss history) in one
 * safetensors file (`@diffuse/models` `saveTensors`), and a small JSON manifest that names that file
 * with its size and SHA-256, the step, the RNG state and the data iterator state.
 *
 * Commit protocol: the safetensors file is written first (atomically, under a new name per step),
 * then the manifest `checkpoint.json` is replaced atomically. The manifest rename is the commit point:
 * a crash before it leaves the previous manifest, which still names the previous (untouched) weights
 * file. Only after the commit are older weights files removed.
 */

import { loadTensors, saveTensors } from '@diffuse/models';
import type * as tf from '@tensorflow/tfjs-core';
import { CheckpointError } from './errors.js';
import type { CheckpointStore } from './store.js';

/** Name of the manifest in a checkpoint store. */
export const MANIFEST = 'checkpoint.json';
const FORMAT = 'diffuse-train-checkpoint';
const VERSION = 1;

/** The JSON manifest of a checkpoint. */
export interface CheckpointManifest {
  format: typeof FORMAT;
  version: number;
  step: number;
  /** The safetensors file holding this checkpoint's tensors. */
  weights: string;
  /** Its size in bytes and SHA-256 (hex), verified on load. */
  bytes: number;
  sha256: string;
  /** Anything JSON the trainer needs back (RNG state, data iterator state, options, metrics). */
  state: Record<string, unknown>;
  /** ISO time of the save. */
  savedAt: string;
}

/** A checkpoint read back: the manifest and the tensors (the caller disposes them). */
export interface LoadedCheckpoint {
  manifest: CheckpointManifest;
  tensors: Map<string, tf.Tensor>;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined)
    throw new CheckpointError('WebCrypto (crypto.subtle) is not available to hash the checkpoint');
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes as unknown as ArrayBuffer));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `weights-000123.safetensors` for step 123. */
export function weightsFileName(step: number): string {
  return `weights-${String(step).padStart(9, '0')}.safetensors`;
}

/**
 * Saves a checkpoint (see the module comment for the crash-safe protocol) and keeps the `keep` most
 * recent weights files (default 1: only the one the manifest names).
 *
 * @example
 * await saveCheckpoint(store, 100, { 'param/0': w }, { rng: rng.state() });
 */
export async function saveCheckpoint(
  store: CheckpointStore,
  step: number,
  tensors: Record<string, tf.Tensor>,
  state: Record<string, unknown>,
  options: { keep?: number } = {},
): Promise<CheckpointManifest> {
  const keep = options.keep ?? 1;
  const bytes = await saveTensors(tensors, { format: FORMAT, step: String(step) });
  const weights = weightsFileName(step);
  await store.write(weights, bytes);
  const manifest: CheckpointManifest = {
    format: FORMAT,
    version: VERSION,
    step,
    weights,
    bytes: bytes.byteLength,
    sha256: await sha256Hex(bytes),
    state,
    savedAt: new Date().toISOString(),
  };
  await store.write(MANIFEST, new TextEncoder().encode(`${JSON.stringify(manifest, null, 1)}\n`));
  // committed: drop older weights files beyond `keep`
  const old = (await store.list())
    .filter((f) => /^weights-\d+\.safetensors$/.test(f) && f !== weights)
    .sort()
    .reverse();
  for (const f of old.slice(Math.max(0, keep - 1))) await store.remove(f);
  return manifest;
}

/** The manifest's fields, each checked (a manifest is untrusted input like any file). */
function checkManifest(m: unknown): CheckpointManifest {
  const bad = (what: string) => new CheckpointError(`${MANIFEST}: ${what}`);
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw bad('must be a JSON object');
  const o = m as Record<string, unknown>;
  if (o.format !== FORMAT || o.version !== VERSION)
    throw new CheckpointError(`${MANIFEST} is not a ${FORMAT} version ${VERSION} manifest`);
  if (!Number.isSafeInteger(o.step) || (o.step as number) < 0)
    throw bad(`step must be an integer >= 0, got ${JSON.stringify(o.step)}`);
  if (typeof o.weights !== 'string' || !/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(o.weights))
    throw bad(`weights must name a file of the store, got ${JSON.stringify(o.weights)}`);
  if (!Number.isSafeInteger(o.bytes) || (o.bytes as number) < 0)
    throw bad(`bytes must be an integer >= 0, got ${JSON.stringify(o.bytes)}`);
  if (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256))
    throw bad('sha256 must be 64 lowercase hex digits');
  if (o.state === null || typeof o.state !== 'object' || Array.isArray(o.state))
    throw bad('state must be a JSON object');
  return o as unknown as CheckpointManifest;
}

/**
 * Reads the committed checkpoint of a store, verifying the weights file's size and SHA-256 against
 * the manifest. Returns null when the store has no checkpoint. Every field of the manifest is
 * checked, and a weights file that passes the hash but is not valid safetensors is a
 * `CheckpointError` too (its `cause` is the parser's `SafetensorsError`).
 *
 * @example
 * const ckpt = await loadCheckpoint(store);
 * if (ckpt) console.log('resuming at step', ckpt.manifest.step);
 */
export async function loadCheckpoint(store: CheckpointStore): Promise<LoadedCheckpoint | null> {
  const raw = await store.read(MANIFEST);
  if (raw === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    throw new CheckpointError(`${MANIFEST} is not valid JSON: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const manifest = checkManifest(parsed);
  const bytes = await store.read(manifest.weights);
  if (bytes === null)
    throw new CheckpointError(`the checkpoint's weights file ${manifest.weights} is missing`);
  if (bytes.byteLength !== manifest.bytes) {
    throw new CheckpointError(
      `${manifest.weights} has ${bytes.byteLength} bytes but the manifest says ${manifest.bytes}`,
    );
  }
  if ((await sha256Hex(bytes)) !== manifest.sha256) {
    throw new CheckpointError(
      `${manifest.weights} does not match the SHA-256 in ${MANIFEST} (corrupt file)`,
    );
  }
  let tensors: Map<string, tf.Tensor>;
  try {
    ({ tensors } = loadTensors(bytes));
  } catch (e) {
    // the hash matched: a file written like this on purpose, or by a different writer
    throw new CheckpointError(
      `${manifest.weights} is not a valid safetensors file: ${(e as Error).message}`,
      { cause: e },
    );
  }
  return { manifest, tensors };
}
