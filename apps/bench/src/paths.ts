/**
 * Files the app reads at run time, found from the app's own folder (the same from `src/` under
 * vitest and from the bundled `dist/cli.js`).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** apps/bench/ */
export const APP_ROOT = fileURLToPath(new URL('..', import.meta.url));

export const PYTHON_PEER = resolve(APP_ROOT, 'python/torch_peer.py');
export const RESULTS_SCHEMA = resolve(APP_ROOT, 'schema/results.schema.json');

/**
 * The reference numbers: `$DIFFUSE_REFS` when set, else the repository's own `reference-data/`.
 * Null when absent (the accuracy suite then says so).
 */
export function refsDir(): string | null {
  const dir = process.env.DIFFUSE_REFS ?? resolve(APP_ROOT, '../../reference-data');
  return existsSync(resolve(dir, 'kdiffusion/trajectories.json')) ? dir : null;
}
