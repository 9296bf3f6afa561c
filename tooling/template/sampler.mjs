// `pnpm new sampler <name> [--description "..."]`: writes packages/samplers/src/samplers/<name>.ts
// (a working first-order skeleton to replace with the new algorithm) and adds its registry line to
// packages/samplers/src/samplers/index.ts. The conformance suite (src/conformance.test.ts) then checks
// the new sampler automatically: order of convergence, point mass, moments, leaks, seeds.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const camel = (s) => s.replace(/[-_]([a-z0-9])/g, (_, c) => c.toUpperCase());

export function create(name, { root, description }) {
  const dir = join(root, 'packages', 'samplers', 'src', 'samplers');
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
  console.log(`created packages/samplers/src/samplers/${name}.ts and registered '${id}'.`);
  console.log(
    'Next: pnpm --filter @diffuse/samplers build && cd packages/samplers && npx vitest run src/conformance.test.ts',
  );
}
