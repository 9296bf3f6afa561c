/**
 * Where `initBackend` finds the tfjs backend packages. They are optional peer dependencies: install
 * the ones you use. A bundle enables one by importing its entry (`import '@diffuse/backend/webgl'`),
 * which hands the package to this registry; in Node, `initBackend` also imports an installed one by
 * name when no entry did.
 *
 * The registry lives on `globalThis` (under a `Symbol.for` key) so that the entries, the ESM and the
 * CommonJS builds of this package all see the same one.
 */
import { BackendUnavailableError } from './errors.js';

/** The backends Diffuse runs on. */
export type BackendName = 'wasm' | 'webgl' | 'webgpu' | 'cpu';

/** The npm package of each backend. */
export const BACKEND_PACKAGES: Readonly<Record<BackendName, string>> = {
  cpu: '@tensorflow/tfjs-backend-cpu',
  wasm: '@tensorflow/tfjs-backend-wasm',
  webgl: '@tensorflow/tfjs-backend-webgl',
  webgpu: '@tensorflow/tfjs-backend-webgpu',
};

/** What Diffuse uses of a backend package (the wasm one's path and thread functions). */
export interface BackendPackage {
  setWasmPaths?: (paths: string | Record<string, string>, usePlatformFetch?: boolean) => void;
  getThreadsCount?: () => number;
}

const KEY = Symbol.for('@diffuse/backend:packages');

function registry(): Map<BackendName, BackendPackage> {
  const g = globalThis as { [KEY]?: Map<BackendName, BackendPackage> };
  g[KEY] ??= new Map();
  return g[KEY];
}

/**
 * Makes a loaded backend package available to `initBackend` (what the `@diffuse/backend/<name>`
 * entries do; apps need not call it).
 *
 * @example
 * import * as webgl from '@tensorflow/tfjs-backend-webgl';
 * provideBackendPackage('webgl', webgl);
 */
export function provideBackendPackage(name: BackendName, pkg: object): void {
  registry().set(name, pkg as BackendPackage);
}

/** True in Node (and Node-like runtimes), false in a browser or worker. */
export function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

/**
 * The backend package `name`: the one an entry provided, else (Node only) the installed one.
 * Throws `BackendUnavailableError` saying what to install or import.
 */
export async function loadBackendPackage(name: BackendName): Promise<BackendPackage> {
  const provided = registry().get(name);
  if (provided !== undefined) return provided;
  const spec = BACKEND_PACKAGES[name];
  if (!isNode()) {
    throw new BackendUnavailableError(
      name,
      `not in this bundle: add \`import '@diffuse/backend/${name}';\` to your app (and install ${spec})`,
    );
  }
  let ns: BackendPackage & { default?: BackendPackage };
  try {
    // A variable specifier: bundlers leave it alone (this path runs in Node only).
    ns = await import(/* @vite-ignore */ /* webpackIgnore: true */ spec);
  } catch (e) {
    throw new BackendUnavailableError(
      name,
      `${spec} is not installed (an optional peer dependency of @diffuse/backend): npm install ${spec}`,
      { cause: e },
    );
  }
  const pkg = ns.setWasmPaths === undefined && ns.default !== undefined ? ns.default : ns;
  provideBackendPackage(name, pkg);
  return pkg;
}
