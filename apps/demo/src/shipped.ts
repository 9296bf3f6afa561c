/**
 * The trained models committed in `packages/train/weights/`: found at build time (Vite's
 * `import.meta.glob`), copied into the build as static assets (`?url`), fetched from the page's own
 * origin and rebuilt with `loadModel` from `@diffuse/models` (the config travels in the safetensors
 * metadata, and in `<name>.json` beside it); `<name>.metrics.json` says how it was trained.
 */
import { loadModel, type Model, type ModelConfig, parseSafetensors } from '@diffuse/models';

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
  /** `<name>.json` beside the weights: the model config, if present. */
  config: ModelConfig | undefined;
  /** `<name>.metrics.json`: how it was trained and what it reached, if present. */
  metrics: Record<string, unknown> | undefined;
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
      const config = CARDS[`${base}.json`] as ModelConfig | undefined;
      const metrics = CARDS[`${base}.metrics.json`] as Record<string, unknown> | undefined;
      return { name, url, config, metrics };
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
      // The config travels in the safetensors metadata; the JSON beside it is the fallback.
      const model = loadModel(
        metadata['diffuse.config'] === undefined && entry.config
          ? { config: entry.config, weights: bytes }
          : { weights: bytes },
      );
      return { entry, model, metadata };
    })();
    p.catch(() => cache.delete(entry.url));
    cache.set(entry.url, p);
  }
  return p;
}
