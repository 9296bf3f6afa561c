/**
 * diffusers' `ConfigMixin.from_config` / `extract_init_dict` semantics (configuration_utils.py,
 * diffusers 0.40), on the class signatures of `signatures.ts`:
 *
 * 1. keys listed in the config's `_use_default_values` (those the source class only defaulted) and
 *    `_use_default_values` itself are dropped, so a class swap takes the target class's own defaults;
 * 2. keys of the target's compatible classes (`KarrasDiffusionSchedulers`) that the target does not take
 *    are dropped silently, and so are keys of the config's own `_class_name` class (a swap);
 * 3. overrides (the `**kwargs` of `from_config`) apply last;
 * 4. every other key the target does not take is ignored with one warning naming it;
 * 5. the resolved config is the target's init parameters (given or default), `_use_default_values`, then
 *    every key of the input the target did not take (`_class_name` set to the target), as diffusers'
 *    `scheduler.config` holds them.
 */
import { describeValue, ScheduleError, validateDiffusersFields } from '@diffuse/schedules';
import { SchedulerConfigError } from '../errors.js';
import type { DiffusersConfig, SchedulerConfigOverrides } from './classes.js';
import { KARRAS_COMPATIBLE_OTHERS, KARRAS_COMPATIBLES, SIGNATURES } from './signatures.js';

/** What `resolveDiffusersConfig` returns. */
export interface ResolvedDiffusersConfig {
  className: string;
  /** The target's init parameters, in diffusers' signature order (file / override / default). */
  init: DiffusersConfig;
  /** `scheduler.config` as diffusers holds it: init, `_use_default_values`, then the other input keys. */
  config: DiffusersConfig;
  /** Keys of the input the class does not take (diffusers' `keys_not_init_params`), in input order. */
  ignoredKeys: string[];
  /** diffusers' load warnings (only keys no compatible class knows), at most one. */
  warnings: string[];
}

/** Options of the config resolution. */
export interface ResolveOptions {
  /** Throw on any key the class does not take, instead of ignoring it (default false). */
  strict?: boolean;
}

const FLAX = /^Flax/;

/** Runs the shared value validation of `@diffuse/schedules`, as this package's error type. */
export function validateFields(config: unknown, what: string): void {
  try {
    validateDiffusersFields(config);
  } catch (e) {
    if (e instanceof ScheduleError) throw new SchedulerConfigError(`${what}: ${e.message}`);
    throw e;
  }
}

/**
 * Resolves a diffusers config for the class `overrides._class_name ?? config._class_name`, with
 * diffusers' `from_config` semantics (see the module comment). Validates every value first (types,
 * ranges, sizes), so nothing is allocated for a bad config.
 *
 * @example
 * resolveDiffusersConfig(pndmConfig, { _class_name: 'DPMSolverMultistepScheduler', use_karras_sigmas: true });
 */
export function resolveDiffusersConfig(
  config: unknown,
  overrides: SchedulerConfigOverrides = {},
  options: ResolveOptions = {},
): ResolvedDiffusersConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new SchedulerConfigError(
      `a scheduler config must be an object (a parsed scheduler_config.json), got ${describeValue(config)}`,
    );
  }
  if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) {
    throw new SchedulerConfigError(`overrides must be an object, got ${describeValue(overrides)}`);
  }
  const input = config as DiffusersConfig;
  const target = overrides._class_name ?? input._class_name;
  if (typeof target !== 'string') {
    throw new SchedulerConfigError(
      `the config has no _class_name string (got ${describeValue(target)}); name the scheduler class`,
    );
  }
  const origin = input._class_name;
  if (origin !== undefined && typeof origin !== 'string' && !Array.isArray(origin)) {
    throw new SchedulerConfigError(
      `_class_name must be a string, got ${describeValue(origin)} (diffusers raises here too)`,
    );
  }
  if (FLAX.test(target)) {
    throw new SchedulerConfigError(
      `${target} is a Flax (JAX) scheduler class: diffusers 0.40 has no Flax classes and cannot load this file either; ` +
        `use its PyTorch class '${target.replace(FLAX, '')}' (same keys) if the model is the same`,
    );
  }
  const signature = SIGNATURES[target];
  if (signature === undefined) {
    throw new SchedulerConfigError(
      `unknown _class_name '${target}'; supported: ${Object.keys(SIGNATURES)
        .filter((c) => c !== 'CogVideoXDPMScheduler')
        .join(', ')}`,
    );
  }
  const used = input._use_default_values ?? [];
  if (!Array.isArray(used) || !used.every((k) => typeof k === 'string')) {
    throw new SchedulerConfigError(
      `_use_default_values must be an array of key names, got ${describeValue(used)}`,
    );
  }
  for (const k of Object.keys(overrides)) {
    if (k !== '_class_name' && !(k in signature)) {
      throw new SchedulerConfigError(
        `${target} has no option '${k}' to override; its options are ${Object.keys(signature).join(', ')}`,
      );
    }
  }
  // 1. drop what the source only defaulted
  const original: DiffusersConfig = {};
  for (const [k, v] of Object.entries(input)) {
    if (k === '_use_default_values' || used.includes(k)) continue;
    original[k] = v;
  }
  const what = `${target} config`;
  validateFields(original, what);
  validateFields(overrides, `${target} overrides`);

  const expected = new Set(Object.keys(signature));
  // 2. keys of compatible classes and of the source class are dropped silently
  const silent = new Set<string>();
  if (KARRAS_COMPATIBLES.includes(target) || KARRAS_COMPATIBLE_OTHERS.includes(target)) {
    for (const c of KARRAS_COMPATIBLES)
      for (const k of Object.keys(SIGNATURES[c]!)) if (!expected.has(k)) silent.add(k);
  }
  if (typeof origin === 'string' && origin !== target && SIGNATURES[origin]) {
    for (const k of Object.keys(SIGNATURES[origin]!)) if (!expected.has(k)) silent.add(k);
  }

  const init: DiffusersConfig = {};
  const defaulted: string[] = [];
  for (const [k, d] of Object.entries(signature)) {
    if (Object.hasOwn(overrides, k)) init[k] = overrides[k];
    else if (Object.hasOwn(original, k)) init[k] = original[k];
    else {
      init[k] = d;
      defaulted.push(k);
    }
  }
  initRules(target, init);
  const ignoredKeys = Object.keys(original).filter((k) => !k.startsWith('_') && !expected.has(k));
  const warned = ignoredKeys.filter((k) => !silent.has(k));
  if (options.strict && ignoredKeys.length > 0) {
    throw new SchedulerConfigError(
      `${target} does not take ${ignoredKeys.map((k) => `'${k}'`).join(', ')} (strict mode; diffusers ignores ${warned.length > 0 ? warned.map((k) => `'${k}'`).join(', ') : 'them'} ${warned.length > 0 ? 'with a warning' : 'silently'})`,
    );
  }
  const warnings =
    warned.length > 0
      ? [
          `The config attributes {${warned.map((k) => `'${k}': ${describeValue(original[k])}`).join(', ')}} were passed to ${target}, but are not expected and will be ignored. Please verify your scheduler_config.json configuration file.`,
        ]
      : [];

  const resolved: DiffusersConfig = { ...init };
  if (defaulted.length > 0) resolved._use_default_values = [...defaulted].sort();
  for (const [k, v] of Object.entries(original)) {
    if (expected.has(k)) continue;
    resolved[k] = k === '_class_name' ? target : v;
  }
  if (!('_class_name' in resolved)) resolved._class_name = target;
  return { className: target, init, config: resolved, ignoredKeys, warnings };
}

/**
 * What the classes' `__init__` does with the values before anything else: the mutually exclusive sigma
 * options raise, and legacy `algorithm_type` / `solver_type` values of sibling solvers are rewritten
 * (`register_to_config`), which is what a swap between DPMSolver, UniPC and DEIS configs relies on.
 */
function initRules(cls: string, init: DiffusersConfig): void {
  const fail = (m: string) => {
    throw new SchedulerConfigError(`${cls}: ${m} (diffusers raises here too)`);
  };
  const kinds = ['use_beta_sigmas', 'use_exponential_sigmas', 'use_karras_sigmas'].filter(
    (k) => init[k] === true,
  );
  if (kinds.length > 1)
    fail(`only one of use_beta_sigmas, use_exponential_sigmas, use_karras_sigmas can be used`);
  const alg = init.algorithm_type;
  const solver = init.solver_type;
  if (cls === 'DPMSolverMultistepScheduler' || cls === 'DPMSolverSinglestepScheduler') {
    const algs =
      cls === 'DPMSolverMultistepScheduler'
        ? ['dpmsolver', 'dpmsolver++', 'sde-dpmsolver', 'sde-dpmsolver++']
        : ['dpmsolver', 'dpmsolver++', 'sde-dpmsolver++'];
    if (!algs.includes(alg as string)) {
      if (alg === 'deis') init.algorithm_type = 'dpmsolver++';
      else
        fail(
          `algorithm_type ${JSON.stringify(alg)} is not implemented (expected ${algs.join(', ')})`,
        );
    }
    if (solver !== 'midpoint' && solver !== 'heun') {
      if (['logrho', 'bh1', 'bh2'].includes(solver as string)) init.solver_type = 'midpoint';
      else
        fail(`solver_type ${JSON.stringify(solver)} is not implemented (expected midpoint, heun)`);
    }
    if (
      !['dpmsolver++', 'sde-dpmsolver++'].includes(init.algorithm_type as string) &&
      init.final_sigmas_type === 'zero'
    )
      fail(
        `final_sigmas_type 'zero' is not supported for algorithm_type ${JSON.stringify(init.algorithm_type)}; choose 'sigma_min'`,
      );
  } else if (cls === 'EDMDPMSolverMultistepScheduler') {
    if (alg !== 'dpmsolver++' && alg !== 'sde-dpmsolver++') {
      if (alg === 'deis') init.algorithm_type = 'dpmsolver++';
      else
        fail(
          `algorithm_type ${JSON.stringify(alg)} is not implemented (expected dpmsolver++, sde-dpmsolver++)`,
        );
    }
    if (solver !== 'midpoint' && solver !== 'heun') {
      if (['logrho', 'bh1', 'bh2'].includes(solver as string)) init.solver_type = 'midpoint';
      else
        fail(`solver_type ${JSON.stringify(solver)} is not implemented (expected midpoint, heun)`);
    }
  } else if (cls === 'CosineDPMSolverMultistepScheduler') {
    if (solver !== 'midpoint' && solver !== 'heun') {
      if (['logrho', 'bh1', 'bh2'].includes(solver as string)) init.solver_type = 'midpoint';
      else
        fail(`solver_type ${JSON.stringify(solver)} is not implemented (expected midpoint, heun)`);
    }
  } else if (cls === 'UniPCMultistepScheduler') {
    if (solver !== 'bh1' && solver !== 'bh2') {
      if (['midpoint', 'heun', 'logrho'].includes(solver as string)) init.solver_type = 'bh2';
      else fail(`solver_type ${JSON.stringify(solver)} is not implemented (expected bh1, bh2)`);
    }
    if (init.shift_terminal != null && init.use_flow_sigmas !== true)
      fail('shift_terminal is only supported when use_flow_sigmas = true');
  } else if (cls === 'DEISMultistepScheduler') {
    if (alg !== 'deis') {
      if (alg === 'dpmsolver' || alg === 'dpmsolver++') init.algorithm_type = 'deis';
      else fail(`algorithm_type ${JSON.stringify(alg)} is not implemented (expected deis)`);
    }
    if (solver !== 'logrho') {
      if (['midpoint', 'heun', 'bh1', 'bh2'].includes(solver as string))
        init.solver_type = 'logrho';
      else fail(`solver_type ${JSON.stringify(solver)} is not implemented (expected logrho)`);
    }
  } else if (cls === 'FlowMatchEulerDiscreteScheduler') {
    if (init.time_shift_type !== 'exponential' && init.time_shift_type !== 'linear')
      fail(
        `time_shift_type must be 'exponential' or 'linear', got ${JSON.stringify(init.time_shift_type)}`,
      );
  } else if (cls === 'MiniMaxH3Scheduler') {
    if (!((init.shift as number) > 0)) fail(`shift must be positive, got ${String(init.shift)}`);
  }
}
