/**
 * The sampler registry (the extension point, in the spirit of tfjs' kernel registry): a sampler is one
 * file exporting a `SamplerDefinition` plus one line in `samplers/index.ts`; `sample()` finds it by
 * name and the conformance suite checks it automatically.
 */
import { SamplerError } from './errors.js';
import { BUILTIN_SAMPLERS } from './samplers/index.js';
import type { OptionRule, SamplerDefinition, SamplerOptions, SamplerOptionValue } from './types.js';

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

/** Throws a `SamplerError` naming sampler, option and value when `v` breaks `rule`. */
function checkRule(name: string, k: string, v: SamplerOptionValue, rule: OptionRule): void {
  const bad = (what: string) =>
    new SamplerError(`sampler '${name}' option '${k}' ${what}, got ${JSON.stringify(v)}`);
  const checkNumber = (x: number) => {
    if (rule.integer && !Number.isInteger(x)) throw bad('must be an integer');
    if (rule.min !== undefined && !(x >= rule.min)) throw bad(`must be >= ${rule.min}`);
    if (rule.above !== undefined && !(x > rule.above)) throw bad(`must be > ${rule.above}`);
    if (rule.max !== undefined && !(x <= rule.max)) throw bad(`must be <= ${rule.max}`);
  };
  if (typeof v === 'number') checkNumber(v);
  else if (typeof v === 'string' && rule.oneOf && !rule.oneOf.includes(v))
    throw bad(`must be one of ${rule.oneOf.map((o) => `'${o}'`).join(', ')}`);
  else if (Array.isArray(v)) for (const x of v as readonly number[]) checkNumber(x);
}

/**
 * The sampler's defaults overridden by `given`; unknown keys, values of the wrong type, NaN, infinity
 * (unless the default is infinite) and values outside the sampler's `rules` throw a `SamplerError`.
 *
 * @example
 * resolveSamplerOptions(getSampler('euler'), { sChurn: 10 });
 * resolveSamplerOptions(getSampler('ddim'), { eta: -1 }); // throws: option 'eta' must be >= 0
 */
export function resolveSamplerOptions<O extends SamplerOptions>(
  def: SamplerDefinition<O>,
  given: SamplerOptions = {},
): O {
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new SamplerError(
      `samplerOptions of '${def.name}' must be an object, got ${Array.isArray(given) ? 'an array' : String(given)}`,
    );
  }
  const out: SamplerOptions = { ...def.defaults };
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    if (!Object.hasOwn(def.defaults, k)) {
      throw new SamplerError(
        `sampler '${def.name}' has no option '${k}'; its options are ${Object.keys(def.defaults).join(', ') || '(none)'}`,
      );
    }
    const d = def.defaults[k];
    const arrayWanted = Array.isArray(d);
    if (typeof d !== typeof v || arrayWanted !== Array.isArray(v)) {
      throw new SamplerError(
        `sampler '${def.name}' option '${k}' must be ${arrayWanted ? 'an array of numbers' : `a ${typeof d}`}, got ${Array.isArray(v) ? 'an array' : typeof v} (${String(v)})`,
      );
    }
    if (typeof v === 'number' && Number.isNaN(v))
      throw new SamplerError(`sampler '${def.name}' option '${k}' is NaN`);
    if (typeof v === 'number' && !Number.isFinite(v) && Number.isFinite(d as number))
      throw new SamplerError(`sampler '${def.name}' option '${k}' must be finite, got ${v}`);
    if (Array.isArray(v) && !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new SamplerError(
        `sampler '${def.name}' option '${k}' must be an array of finite numbers, got ${JSON.stringify(v)}`,
      );
    }
    const rule = def.rules?.[k as keyof O];
    if (rule) checkRule(def.name, k, v, rule);
    out[k] = v;
  }
  return out as O;
}

for (const def of BUILTIN_SAMPLERS) registerSampler(def);
