// `pnpm new sampler <name> [--description "..."]`, in packages/samplers:
// 1. writes src/samplers/<name>.ts, a working first-order skeleton to replace with the new algorithm;
// 2. adds its registry line to src/samplers/index.ts;
// 3. adds its name to BUILTIN_SAMPLER_NAMES in src/names.ts (so `sampler: '<name>'` type-checks);
// 4. exports the file from src/index.ts;
// 5. adds its row to the README's table of samplers;
// 6. formats the touched files with biome (import order, line breaks), so `pnpm lint` passes.
// The conformance suite (src/conformance.test.ts) then checks the new sampler automatically: order of
// convergence, point mass, moments, leaks, seeds. tooling/checks/test/generators.test.ts runs this
// generator in a temporary copy and checks lint, types and that suite.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Inserts `text` before `marker` in `file`; throws when the marker is missing. */
function insertBefore(file, marker, text) {
  const src = readFileSync(file, 'utf8');
  if (!src.includes(marker)) throw new Error(`${file} has no '${marker.trim()}' marker`);
  writeFileSync(file, src.replace(marker, `${text}${marker}`));
}

const camel = (s) => s.replace(/[-_]([a-z0-9])/g, (_, c) => c.toUpperCase());

export function create(name, { root, description }) {
  const pkg = join(root, 'packages', 'samplers');
  const dir = join(pkg, 'src', 'samplers');
  const file = join(dir, `${name}.ts`);
  const registry = join(dir, 'index.ts');
  if (!existsSync(registry)) throw new Error(`no sampler registry at ${registry}`);
  if (existsSync(file)) throw new Error(`${file} already exists`);
  const id = name.replaceAll('-', '_');
  const fn = camel(`sample-${name}`);
  const def = camel(name);
  const desc = description === 'A Diffuse package.' ? `The ${id} sampler` : description;
  writeFileSync(
    file,
    `import * as tf from '@tensorflow/tfjs-core';
import { toD } from '../helpers.js';
import { type SamplerContext, type SamplerDefinition, type SamplerProgram, denoise, stepEvent } from '../types.js';

export type ${def[0].toUpperCase()}${def.slice(1)}Options = Record<string, never>;

/**
 * ${desc}. (Skeleton: one Euler step per level; replace it with the algorithm.)
 * Write the update in VE variables: x = x_t / alpha, sigma = sigma_t / alpha, D = E[x0 | x].
 *
 * Reference: <paper, section / algorithm; reference implementation>
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: '${id}', steps: 20, shape: [16, 2], seed: 1 });
 */
export function* ${fn}(ctx: SamplerContext, x: tf.Tensor, sigmas: readonly number[]): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = yield* denoise(x, sigma, i);
    yield stepEvent(i, sigma, sigma, x, denoised);
    const next = ctx.tidy(() => tf.add(x, tf.mul(toD(x, sigma, denoised), sigmas[i + 1]! - sigma)));
    ctx.free(x, denoised);
    x = next;
  }
  return x;
}

export const ${def}: SamplerDefinition = {
  name: '${id}',
  description: '${desc.replaceAll("'", "\\'")}',
  reference: '<paper and reference implementation>',
  fn: ${fn},
  defaults: {},
  stochastic: false,
  order: 1,
};
`,
  );
  let reg = readFileSync(registry, 'utf8');
  const marker = '  // new samplers above this line';
  if (!reg.includes(marker)) throw new Error(`${registry} has no '${marker.trim()}' marker`);
  const imports = [...reg.matchAll(/^import .*;$|^import \{[\s\S]*?\} from '.*';$/gm)];
  const last = imports[imports.length - 1];
  const at = last.index + last[0].length;
  reg = `${reg.slice(0, at)}\nimport { ${def} } from './${name}.js';${reg.slice(at)}`;
  reg = reg.replace(marker, `  ${def},\n${marker}`);
  writeFileSync(registry, reg);
  const names = join(pkg, 'src', 'names.ts');
  if (readFileSync(names, 'utf8').includes(`'${id}',`))
    throw new Error(`'${id}' is already in ${names}`);
  insertBefore(names, '  // new sampler names above this line', `  '${id}',\n`);
  const index = join(pkg, 'src', 'index.ts');
  insertBefore(index, "export * from './samplers/", `export * from './samplers/${name}.js';\n`);
  insertBefore(
    join(pkg, 'README.md'),
    '<!-- new samplers above this line -->',
    `| \`${id}\` | ${desc} (skeleton: first-order Euler steps) | | 1 | <reference> |\n`,
  );
  // format and sort imports and exports the way the repository's biome.json wants them
  execFileSync(
    join(root, 'node_modules', '.bin', 'biome'),
    ['check', '--write', file, registry, names, index],
    { cwd: root, stdio: 'ignore' },
  );
  console.log(
    `created packages/samplers/src/samplers/${name}.ts; registered '${id}' (src/samplers/index.ts), ` +
      'named it in src/names.ts, exported it from src/index.ts and added its README row.',
  );
  console.log(
    `Next: write the algorithm, then cd packages/samplers && pnpm vitest run src/conformance.test.ts -t ${id}`,
  );
}
