/**
 * The sampler registry (the extension point, in the spirit of tfjs' kernel registry): a sampler is one
 * file exporting a `SamplerDefinition` plus one line in `samplers/index.ts`; `sample()` finds it by
 * name and the conformance suite checks it automatically.
 */
import { SamplerError } from './errors.js';
import { BUILTIN_SAMPLERS } from './samplers/index.js';
import type { SamplerDefinition, SamplerOptions } from './types.js';

// biome-ignore lint/suspicious/noExplicitAny: definitions differ in their option types
type AnyDefinition = SamplerDefinition<any>;

const registry = new Map<string, AnyDefinition>();

/**
 * Adds a sampler under `def.name`. Throws if the name is taken.
 *
 * @example
 * registerSampler({ name: 'my_euler', description: '...', reference: '...', fn: sampleEuler,
 *   defaults: { sChurn: 0, sTmin: 0, sTmax: Infinity, sNoise: 1 }, stochastic: false, order: 1 });
 */
export function registerSampler<O extends SamplerOptions>(def: SamplerDefinition<O>): void {
  if (!/^[a-z][a-z0-9_]*$/.test(def.name)) {
    throw new SamplerError(
      `sampler name '${def.name}' must be lower-case letters, digits and underscores`,
    );
  }
  if (registry.has(def.name))
    throw new SamplerError(`a sampler named '${def.name}' is already registered`);
  registry.set(def.name, def as AnyDefinition);
}

/**
 * The sampler registered as `name`; a `SamplerError` listing the known names otherwise.
 *
 * @example
 * getSampler('dpmpp_2m').reference; // 'Lu et al. 2022, ...'
 */
export function getSampler(name: string): AnyDefinition {
  const def = registry.get(name);
  if (def === undefined) {
    throw new SamplerError(
      `unknown sampler '${name}'; registered: ${[...registry.keys()].join(', ')}`,
    );
  }
  return def;
}

/**
 * Every registered sampler, in registration order.
 *
 * @example
 * listSamplers().map((s) => s.name); // ['euler', 'heun', ...]
 */
export function listSamplers(): AnyDefinition[] {
  return [...registry.values()];
}

/**
 * The sampler's defaults overridden by `given`; unknown keys or values of the wrong type throw.
 *
 * @example
 * resolveSamplerOptions(getSampler('euler'), { sChurn: 10 });
 */
export function resolveSamplerOptions<O extends SamplerOptions>(
  def: SamplerDefinition<O>,
  given: SamplerOptions = {},
): O {
  const out: SamplerOptions = { ...def.defaults };
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    if (!(k in def.defaults)) {
      throw new SamplerError(
        `sampler '${def.name}' has no option '${k}'; its options are ${Object.keys(def.defaults).join(', ') || '(none)'}`,
      );
    }
    const d = def.defaults[k];
    if (typeof d !== typeof v) {
      throw new SamplerError(
        `sampler '${def.name}' option '${k}' must be a ${typeof d}, got ${typeof v} (${String(v)})`,
      );
    }
    if (typeof v === 'number' && Number.isNaN(v))
      throw new SamplerError(`sampler '${def.name}' option '${k}' is NaN`);
    out[k] = v;
  }
  return out as O;
}

for (const def of BUILTIN_SAMPLERS) registerSampler(def);
