import { DiffuseError } from '@diffuse/backend';

/**
 * A model was given an invalid definition or input: mixture parameters that are not a distribution,
 * a covariance that is not positive definite, a config that does not describe a network, a tensor
 * of the wrong shape, weights that do not match their config.
 *
 * @example
 * try { new GaussianMixture({ weights: [1], means: [[0]], covs: [[[-1]]] }); }
 * catch (e) { if (e instanceof ModelError) console.error(e.message); }
 */
export class ModelError extends DiffuseError {
  constructor(message: string, options?: { code?: string; cause?: unknown }) {
    super(options?.code ?? 'INVALID_MODEL', message, options);
  }
}

/**
 * A network config (from a file, a JSON, a caller) is invalid or over the parameter budget:
 * `field` is the dotted path of the offending key (`mlp.width`, `unet.imageShape[0]`, or `maxParams`
 * for a config that is well-formed but larger than allowed) and `value` what it held.
 *
 * @example
 * try { createModel(JSON.parse(text)); }
 * catch (e) { if (e instanceof ModelConfigError) console.error(e.field, e.message); }
 */
export class ModelConfigError extends ModelError {
  readonly field: string;
  readonly value: unknown;
  constructor(field: string, value: unknown, message: string) {
    super(message, { code: 'INVALID_MODEL_CONFIG' });
    this.field = field;
    this.value = value;
  }
}

/**
 * A diffusers `config.json` cannot be built as written: `key` holds `value`, which is unknown,
 * invalid, or an option this port does not implement (it never builds a different network instead).
 * A `ModelConfigError` (code `INVALID_MODEL_CONFIG`, `field` = `key`).
 *
 * @example
 * try { diffusersModelFromFiles({ config, weights }); } catch (e) {
 *   if (e instanceof DiffusersConfigError) console.error(e.key, e.value);
 * }
 */
export class DiffusersConfigError extends ModelConfigError {
  /** The config key (as `field`; list entries as `down_block_types[1]`). */
  readonly key: string;
  constructor(key: string, value: unknown, why: string) {
    super(key, value, `config key '${key}' = ${show(value)}: ${why}`);
    this.key = key;
  }
}

/**
 * Weights do not fit the network a config describes: tensor `key` is missing, unexpected, of another
 * shape (`expected` and `actual` name both) or of a non-float dtype. Code `INVALID_WEIGHTS`.
 *
 * @example
 * try { diffusersModelFromFiles({ config, weights }); } catch (e) {
 *   if (e instanceof DiffusersWeightsError) console.error(e.key, e.expected, e.actual);
 * }
 */
export class DiffusersWeightsError extends ModelError {
  readonly key: string;
  readonly expected: readonly number[] | undefined;
  readonly actual: readonly number[] | undefined;
  constructor(
    key: string,
    message: string,
    shapes: { expected?: readonly number[]; actual?: readonly number[] } = {},
  ) {
    super(message, { code: 'INVALID_WEIGHTS' });
    this.key = key;
    this.expected = shapes.expected;
    this.actual = shapes.actual;
  }
}

function show(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    return text === undefined
      ? String(value)
      : text.length > 200
        ? `${text.slice(0, 200)}...`
        : text;
  } catch {
    return String(value);
  }
}
