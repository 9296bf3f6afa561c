/**
 * The trained models committed in `packages/train/weights/`: found at build time (Vite's
 * `import.meta.glob`), copied into the build as static assets (`?url`), fetched from the page's own
 * origin and rebuilt with `loadModel` from `@diffuse/models` (the config travels in the safetensors
 * metadata). A JSON file with the same base name, when present, is read as the model's card.
 */
import { loadModel, type Model, parseSafetensors } from '@diffuse/models';

const WEIGHTS = import.meta.glob('../../../packages/train/weights/**/*.safetensors', {
  query: '?url',
  import: 'default',
  eager: true,
}) as Record<string, string>;
const CARDS = import.meta.glob('../../../packages/train/weights/**/*.json', {
  import: 'default',
  eager: true,
}) as Record<string, unknown>;

export interface ShippedEntry {
  /** File name without extension, e.g. `mnist-unet`. */
  name: string;
  url: string;
  /** The JSON beside the weights (how it was trained, its metrics, its data), if any. */
  card: Record<string, unknown> | undefined;
}

export interface LoadedModel {
  entry: ShippedEntry;
  model: Model;
  metadata: Record<string, string>;
}

/** Every weights file in the build. */
export function shippedModels(): ShippedEntry[] {
  return Object.entries(WEIGHTS)
    .map(([path, url]) => {
      const base = path.replace(/\.safetensors$/, '');
      const name = base.split('/').pop()!;
      const card = CARDS[`${base}.json`] as Record<string, unknown> | undefined;
      return { name, url, card };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

const cache = new Map<string, Promise<LoadedModel>>();

/** Fetches and rebuilds a shipped model (once; later calls share it). */
export function loadShipped(entry: ShippedEntry): Promise<LoadedModel> {
  let p = cache.get(entry.url);
  if (!p) {
    p = (async () => {
      const res = await fetch(entry.url);
      if (!res.ok) throw new Error(`could not fetch ${entry.name} weights: HTTP ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const { metadata } = parseSafetensors(bytes);
      return { entry, model: loadModel({ weights: bytes }), metadata };
    })();
    p.catch(() => cache.delete(entry.url));
    cache.set(entry.url, p);
  }
  return p;
}
