/**
 * The one size budget of every network built from an untrusted config, the toolkit's own
 * (`createModel`, `loadModel`) and the diffusers ports (`createDiffusersModel`,
 * `diffusersModelFromFiles`) alike. Two limits, both checked from the config alone, before a tensor
 * is allocated:
 *
 * - `maxParams` (default `DEFAULT_MAX_PARAMS`): the parameter count, tallied while the network's
 *   layout runs through a shape-only store (`ParamStore` with `allocate: false`, or the diffusers
 *   `Registry`); the tally refuses as soon as the count (or the number of tensors) passes the limit,
 *   so a config with depth 1e9 stops after a few thousand cheap steps;
 * - `maxActivationBytes` (default `DEFAULT_MAX_ACTIVATION_BYTES`): the largest single activation one
 *   example needs (a feature map, or the (H W)^2 attention scores of an attended resolution),
 *   estimated by each family from its config: a config over it could be built but never run.
 */
import { ModelConfigError } from './errors.js';

/** The default activation budget: 1 GiB for the largest tensor of one example. */
export const DEFAULT_MAX_ACTIVATION_BYTES = 2 ** 30;

/** The default parameter budget: 100 M parameters (400 MB float32). */
export const DEFAULT_MAX_PARAMS = 100_000_000;

/** Most parameter tensors a config may imply (a deep U-Net has a few hundred, SDXL's ~1,700). */
export const MAX_PARAM_TENSORS = 20_000;

/** The caller's limits (each optional, with the defaults above). */
export interface BudgetOptions {
  /** Most scalar parameters the config may imply. */
  maxParams?: number;
  /** Largest single activation tensor one example may need, in bytes of float32. */
  maxActivationBytes?: number;
}

/** Limits of a parameter tally (see `ParamTally`). */
export interface ParamBudget {
  /** Most scalar parameters in all. */
  maxParams: number;
  /** Most parameter tensors. */
  maxTensors: number;
  /** What is being built, for error messages ("mlp", "UNet2DModel"). */
  what: string;
  /**
   * Where `maxParams` comes from when it is not the caller's option (e.g. "the weights hold"):
   * named in the error instead of the advice to pass a larger `maxParams`.
   */
  source?: string;
}

/** Makes the typed error of a refused budget (each model family throws its own subclass). */
export type BudgetError = (field: string, value: unknown, message: string) => Error;

const configError: BudgetError = (field, value, message) =>
  new ModelConfigError(field, value, message);

/** A byte count for messages: "54.6 MB". */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e3).toFixed(1)} kB`;
}

function positiveInteger(name: string, v: number, error: BudgetError): number {
  if (!(Number.isSafeInteger(v) && v > 0))
    throw error(name, v, `${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/**
 * The parameter budget of one build: the caller's `maxParams` (validated), lowered to `cap` where a
 * smaller bound is known (what a weights file holds). Without the caller's `maxParams` the budget is
 * `cap` itself when there is one (the weights at hand are the evidence of the network's size: a real
 * 860 M-parameter checkpoint loads without options, a 192-byte file cannot claim a large network),
 * else `DEFAULT_MAX_PARAMS`.
 *
 * @example
 * const budget = paramBudget('mlp', { maxParams: 1e6 });
 */
export function paramBudget(
  what: string,
  options: BudgetOptions,
  cap?: { maxParams: number; maxTensors: number; source: string },
  error: BudgetError = configError,
): ParamBudget {
  const maxParams = positiveInteger('maxParams', options.maxParams ?? DEFAULT_MAX_PARAMS, error);
  if (cap !== undefined && (options.maxParams === undefined || cap.maxParams < maxParams))
    return {
      maxParams: cap.maxParams,
      maxTensors: Math.min(cap.maxTensors, MAX_PARAM_TENSORS),
      what,
      source: cap.source,
    };
  return {
    maxParams,
    maxTensors: Math.min(cap?.maxTensors ?? MAX_PARAM_TENSORS, MAX_PARAM_TENSORS),
    what,
  };
}

/**
 * Counts parameters as a layout creates them and refuses (a typed error on `maxParams`) as soon as
 * the total or the number of tensors passes the budget. Without a budget it only counts.
 *
 * @example
 * const tally = new ParamTally(paramBudget('mlp', {}));
 * tally.add('fc.weight', [64, 64]); // 4096
 */
export class ParamTally {
  private total = 0;
  private tensors = 0;
  constructor(
    private readonly budget?: ParamBudget,
    private readonly error: BudgetError = configError,
  ) {}

  /** Adds one tensor of `shape` under `name`; returns its size. */
  add(name: string, shape: readonly number[]): number {
    let size = 1;
    for (const d of shape) size *= d;
    const b = this.budget;
    if (b !== undefined) {
      const where = `at '${name}' [${shape.join(', ')}]`;
      const advice = b.source
        ? `than ${b.source}`
        : `over the budget maxParams = ${b.maxParams}; pass a larger maxParams to build it`;
      if (!(this.total + size <= b.maxParams))
        throw this.error(
          'maxParams',
          b.maxParams,
          `${b.what} config needs more than ${b.maxParams} parameters (${formatBytes(b.maxParams * 4)} as float32; ${where}), ${b.source ? `a far larger network ${advice}` : advice}`,
        );
      if (this.tensors >= b.maxTensors)
        throw this.error(
          'maxParams',
          b.maxTensors,
          `${b.what} config needs more than ${b.maxTensors} parameter tensors (${where})${b.source ? `, a far larger network ${advice}` : ''}`,
        );
    }
    this.total += size;
    this.tensors += 1;
    return size;
  }

  /** Scalar parameters added so far. */
  get size(): number {
    return this.total;
  }
}

/**
 * Refuses (a typed error naming `field`) a config whose largest activation of one example,
 * `elements` float32 numbers, is over `maxActivationBytes` (default 1 GiB).
 *
 * @example
 * checkActivationBudget({ elements: 64 * 64 * 128, field: 'unet.imageShape', value: [64, 64] }, {});
 */
export function checkActivationBudget(
  activation: { elements: number; field: string; value: unknown },
  options: BudgetOptions,
  error: BudgetError = configError,
): void {
  const limit = positiveInteger(
    'maxActivationBytes',
    options.maxActivationBytes ?? DEFAULT_MAX_ACTIVATION_BYTES,
    error,
  );
  const { elements, field, value } = activation;
  if (!(elements * 4 <= limit))
    throw error(
      field,
      value,
      `${field}: one example needs a ${formatBytes(elements * 4)} activation (feature map or attention scores), over maxActivationBytes = ${limit}; pass a larger maxActivationBytes to build it`,
    );
}
