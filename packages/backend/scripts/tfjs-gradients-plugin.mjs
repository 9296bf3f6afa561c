// esbuild plugin for @diffuse/backend's Node build (dist/node/): bundles tfjs-core's gradient
// registrations (`@tensorflow/tfjs-core/dist/register_all_gradients` and the gradient files it
// imports) wired to the user's own `@tensorflow/tfjs-core`, never a second copy of it.
//
// Why: tfjs-core registers no gradients by itself, and the file that does is an ES module with
// extension-less imports in a package without `"type": "module"` or an exports map, so Node cannot
// load it (bundlers can: the browser build keeps that import external). Bundling it whole would
// also bundle tfjs-core's Engine, Tensor and ops (a second partial tfjs-core, ~150 KB). So every
// tfjs-core module the gradient files import is replaced by a small generated module that re-exports
// the same names from the public `@tensorflow/tfjs-core` (top level, `backend_util`, `util`,
// `slice_util`, `engine()`), and only modules that define names tfjs-core does not export (the
// backprop ops such as `conv2DBackpropFilter`, `convertToTensor`) are bundled, themselves wired the
// same way. The build fails if that would bundle a module holding tfjs-core's state (engine, tensor,
// registries, environment) or if a name has no public source.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, normalize, relative } from 'node:path';

const ENTRY = '@tensorflow/tfjs-core/dist/register_all_gradients';
const SHIM_NS = 'diffuse-tfjs-core-public';
// Modules whose code must never be copied: they hold tfjs-core's global state or its classes.
const FORBIDDEN = new Set([
  'engine.js',
  'tensor.js',
  'kernel_registry.js',
  'environment.js',
  'global_util.js',
  'index.js',
  'base.js',
]);
// Names that are public under another form.
const SPECIAL = {
  ENGINE: 'tf.engine()',
  getGlobalTensorClass: '() => tf.Tensor',
};

const importRe =
  /import\s+(?:(\{[^}]*\})|\*\s+as\s+(\w+))\s+from\s+["']([^"']+)["']|import\s+["']([^"']+)["']/g;

/** Where a public tfjs-core name lives, as an expression over `tf`, or null. */
function publicSource(tf, name) {
  if (name in SPECIAL) return SPECIAL[name];
  if (name in tf) return `tf.${name}`;
  for (const ns of ['backend_util', 'util', 'slice_util']) {
    if (tf[ns] && name in tf[ns]) return `tf.${ns}.${name}`;
  }
  return null;
}

/** Walks the gradient files' imports: which tfjs-core modules to bundle, which to replace. */
export function planGradients(coreDir, tf) {
  const entry = 'register_all_gradients.js';
  const bundled = new Set([entry]);
  const queue = [entry];
  /** @type {Map<string, Map<string, string>>} module -> name -> public expression */
  const shims = new Map();
  while (queue.length > 0) {
    const file = queue.shift();
    const text = readFileSync(join(coreDir, file), 'utf8');
    const byModule = new Map();
    for (const m of text.matchAll(importRe)) {
      const spec = m[3] ?? m[4];
      if (!spec.startsWith('.')) continue;
      const target = `${normalize(join(dirname(file), spec))}.js`;
      const names = byModule.get(target) ?? [];
      if (m[1]) {
        for (const n of m[1].slice(1, -1).split(',')) {
          const name = n.trim().split(/\s+as\s+/)[0];
          if (name) names.push(name);
        }
      } else if (m[2]) {
        // a namespace import: the names this file reads from it
        for (const use of text.matchAll(new RegExp(`\\b${m[2]}\\.(\\w+)`, 'g'))) names.push(use[1]);
      }
      byModule.set(target, names);
    }
    for (const [target, names] of byModule) {
      if (bundled.has(target)) continue;
      const sources = names.map((n) => [n, publicSource(tf, n)]);
      if (!target.startsWith('gradients/') && sources.every(([, s]) => s !== null)) {
        const shim = shims.get(target) ?? new Map();
        for (const [n, s] of sources) shim.set(n, s);
        shims.set(target, shim);
      } else {
        if (FORBIDDEN.has(target)) {
          const missing = sources.filter(([, s]) => s === null).map(([n]) => n);
          throw new Error(
            `tfjs-gradients: ${file} needs ${missing.join(', ')} from ${target}, which tfjs-core does not export; bundling ${target} would copy tfjs-core's state`,
          );
        }
        bundled.add(target);
        queue.push(target);
      }
    }
  }
  // A module bundled for one importer is bundled for all.
  for (const b of bundled) shims.delete(b);
  return { bundled, shims };
}

/** @returns {import('esbuild').Plugin} */
export function tfjsGradientsPlugin() {
  return {
    name: 'diffuse-tfjs-gradients',
    setup(build) {
      const require = createRequire(join(process.cwd(), 'package.json'));
      const coreDir = dirname(
        require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js'),
      );
      const tf = require('@tensorflow/tfjs-core');
      const { bundled, shims } = planGradients(coreDir, tf);

      build.onResolve({ filter: /^@tensorflow\/tfjs-core\/dist\/register_all_gradients$/ }, () => ({
        path: join(coreDir, 'register_all_gradients.js'),
      }));
      build.onResolve({ filter: /^\./ }, (args) => {
        if (!args.importer.startsWith(coreDir)) return undefined;
        const target = normalize(
          relative(coreDir, join(dirname(args.importer), `${args.path}.js`)),
        );
        if (bundled.has(target)) return { path: join(coreDir, target) };
        if (shims.has(target)) return { path: target, namespace: SHIM_NS };
        throw new Error(`tfjs-gradients: unplanned import of ${target} from ${args.importer}`);
      });
      build.onLoad({ filter: /.*/, namespace: SHIM_NS }, (args) => {
        const lines = ["import * as tf from '@tensorflow/tfjs-core';"];
        for (const [name, source] of shims.get(args.path)) {
          lines.push(`export const ${name} = ${source};`);
        }
        return { contents: lines.join('\n'), loader: 'js', resolveDir: process.cwd() };
      });
    },
  };
}

export { ENTRY };
