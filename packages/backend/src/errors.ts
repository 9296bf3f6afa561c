/**
 * The base class of every error Diffuse throws on purpose. `code` is stable and machine-readable;
 * the message says what was wrong and, where it helps, what to do instead.
 *
 * @example
 * try { await initBackend('webgpu'); } catch (e) {
 *   if (e instanceof DiffuseError) console.error(e.code, e.message);
 * }
 */
export class DiffuseError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A requested tensor backend cannot be used here; `reason` says why. */
export class BackendUnavailableError extends DiffuseError {
  readonly backend: string;
  readonly reason: string;
  constructor(backend: string, reason: string, options?: { cause?: unknown }) {
    super('BACKEND_UNAVAILABLE', `Backend '${backend}' is unavailable: ${reason}`, options);
    this.backend = backend;
    this.reason = reason;
  }
}

/** A block of work left tensors allocated that it should have disposed. */
export class TensorLeakError extends DiffuseError {
  readonly leaked: number;
  constructor(label: string, leaked: number) {
    super('TENSOR_LEAK', `${label} leaked ${leaked} tensor(s)`);
    this.leaked = leaked;
  }
}

/** An argument is invalid (wrong shape, out of range, wrong type). */
export class InvalidArgumentError extends DiffuseError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}
