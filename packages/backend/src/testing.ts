/** Test and debugging helpers used across the toolkit: leak checks, readbacks and the seeded fuzz harness. */
import * as tf from '@tensorflow/tfjs-core';
import { DiffuseError, TensorLeakError } from './errors.js';
import { Random } from './random.js';

/** The number of tensors the engine holds right now. */
export function liveTensors(): number {
  return tf.memory().numTensors;
}

function countTensors(value: unknown, seen = new Set<unknown>()): number {
  if (value === null || typeof value !== 'object' || seen.has(value)) return 0;
  seen.add(value);
  if (value instanceof tf.Tensor) return value.isDisposed ? 0 : 1;
  let n = 0;
  for (const v of Array.isArray(value) ? value : Object.values(value)) n += countTensors(v, seen);
  return n;
}

/**
 * Runs `fn` and throws a `TensorLeakError` if it left more tensors alive than it returned.
 * Tensors in the result (also nested in arrays or plain objects) are the caller's and not counted.
 *
 * @example
 * const y = await assertNoLeaks(() => tf.tidy(() => tf.add(x, 1)), 'add');
 */
export async function assertNoLeaks<T>(fn: () => T | Promise<T>, label = 'block'): Promise<T> {
  const before = liveTensors();
  const result = await fn();
  const leaked = liveTensors() - before - countTensors(result);
  if (leaked > 0) throw new TensorLeakError(label, leaked);
  return result;
}

/** Synchronous variant of `assertNoLeaks`. */
export function assertNoLeaksSync<T>(fn: () => T, label = 'block'): T {
  const before = liveTensors();
  const result = fn();
  const leaked = liveTensors() - before - countTensors(result);
  if (leaked > 0) throw new TensorLeakError(label, leaked);
  return result;
}

/**
 * Reads a tensor back as a Float32Array (asynchronously, so webgl/webgpu do not block).
 * Disposes the tensor when `dispose` is true.
 */
export async function readFloat32(t: tf.Tensor, dispose = false): Promise<Float32Array> {
  try {
    const data = await t.data();
    return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  } finally {
    if (dispose) t.dispose();
  }
}

/** Reads a tensor back as a nested JS array (rank >= 1) or a number (rank 0). */
export async function readArray(t: tf.Tensor, dispose = false): Promise<unknown> {
  try {
    return await t.array();
  } finally {
    if (dispose) t.dispose();
  }
}

/** Largest absolute difference between two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// ------------------------------------------------------------------ fuzzing

/** CPU time of this process in ms (`process.cpuUsage`), or wall time where there is no process. */
function cpuMs(): number {
  const p = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } })
    .process;
  if (p?.cpuUsage) {
    const u = p.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  return performance.now();
}

/** Frees what a call returned: tensors (also in arrays, Maps and plain objects) and `dispose()`-ables. */
function disposeResult(value: unknown, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof tf.Tensor) {
    if (!value.isDisposed) value.dispose();
    return;
  }
  const d = (value as { dispose?: unknown }).dispose;
  if (typeof d === 'function') {
    (d as () => void).call(value);
    return;
  }
  const items =
    value instanceof Map ? value.values() : Array.isArray(value) ? value : Object.values(value);
  for (const v of items) disposeResult(v, seen);
}

/** Options of a `Fuzzer`. */
export interface FuzzerOptions {
  /**
   * CPU time one call may use, in ms (default 1000). Measured with `process.cpuUsage()` (this
   * process's user + system time), so other processes on a loaded machine do not make it flaky;
   * wall-clock time where there is no `process` (a browser).
   */
  cpuLimitMs?: number;
  /** Wall-clock time after which a pending (async) call counts as hung (default 30 s). */
  hangMs?: number;
  /** The error class every rejection must be an instance of (default `DiffuseError`). */
  typed?: abstract new (
    ...args: never[]
  ) => Error;
}

/** How one fuzzed call ended: it returned (`ok`: the mutation left the input valid) or threw a typed error. */
export type FuzzOutcome = 'ok' | 'rejected';

/**
 * The toolkit's seeded fuzz harness. Random choices come from `Random.seed(seed)` (the project's
 * RNG, the same stream on every platform), and `probe` runs one call on hostile input and records a
 * failure unless it returned or threw a typed error (`DiffuseError`), used at most `cpuLimitMs` of
 * CPU, and left no tensor alive (what it returned is freed first). `check` adds a test's own
 * condition (a wasm heap that must not grow, a state that must not change). Assert
 * `fuzzer.failures` is empty at the end; `summary()` gives the counts for the log.
 *
 * @example
 * const fuzz = new Fuzzer(20261208);
 * for (let i = 0; i < 500; i++) {
 *   const config = { width: fuzz.pick([8, -1, '8', null]) };
 *   await fuzz.probe('createModel', () => JSON.stringify(config), () => createModel(config));
 * }
 * expect(fuzz.failures).toEqual([]);
 */
export class Fuzzer {
  /** The stream every random choice of the cases comes from. */
  readonly rng: Random;
  /** One line per broken call: what, the problem, and the input. */
  readonly failures: string[] = [];
  /** How many calls threw each error class. */
  readonly errorKinds = new Map<string, number>();
  /** Calls that returned / were rejected. */
  readonly counts = { ok: 0, rejected: 0 };
  /** The most CPU time (ms) one call used, and the most wall time. */
  slowestCpuMs = 0;
  slowestWallMs = 0;
  private readonly cpuLimitMs: number;
  private readonly hangMs: number;
  private readonly typed: abstract new (
    ...args: never[]
  ) => Error;

  constructor(seed: number, options: FuzzerOptions = {}) {
    this.rng = Random.seed(seed);
    this.cpuLimitMs = options.cpuLimitMs ?? 1000;
    this.hangMs = options.hangMs ?? 30_000;
    this.typed = options.typed ?? DiffuseError;
  }

  /** A uniform number in [0, 1). */
  uniform(): number {
    return this.rng.uniform01();
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return this.rng.int(n);
  }

  /** A uniformly chosen element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.rng.int(items.length)]!;
  }

  /**
   * Runs `fn` once on hostile input; 'ok' or 'rejected', anything else is recorded in `failures`
   * with `input()` (called only then). `dispose` frees an ok result (default: its tensors and
   * `dispose()`-ables); `check` (called before the result is freed) returns a problem to record, or
   * undefined.
   */
  async probe<T>(
    what: string,
    input: () => string,
    fn: () => T | Promise<T>,
    options: {
      dispose?: (result: T) => void;
      check?: (outcome: FuzzOutcome, result: T | undefined) => string | undefined;
    } = {},
  ): Promise<FuzzOutcome> {
    const live = liveTensors();
    const cpu0 = cpuMs();
    const wall0 = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = Symbol('hung');
    let result: T | undefined;
    let error: unknown;
    let threw = false;
    try {
      const r = await Promise.race([
        Promise.resolve().then(fn),
        new Promise<typeof hung>((resolve) => {
          timer = setTimeout(() => resolve(hung), this.hangMs);
        }),
      ]);
      if (r === hung) {
        this.failures.push(`${what}: no answer after ${this.hangMs} ms\n    input: ${input()}`);
        return 'rejected';
      }
      result = r as T;
    } catch (e) {
      error = e;
      threw = true;
    } finally {
      clearTimeout(timer);
    }
    const cpu = cpuMs() - cpu0;
    const wall = performance.now() - wall0;
    this.slowestCpuMs = Math.max(this.slowestCpuMs, cpu);
    this.slowestWallMs = Math.max(this.slowestWallMs, wall);
    const problems: string[] = [];
    if (cpu > this.cpuLimitMs)
      problems.push(`used ${cpu.toFixed(0)} ms of CPU (limit ${this.cpuLimitMs} ms)`);
    const outcome: FuzzOutcome = threw ? 'rejected' : 'ok';
    // the test's own condition sees the result before it is freed
    const extra = options.check?.(outcome, result);
    if (!threw) {
      if (options.dispose) options.dispose(result as T);
      else disposeResult(result);
      if (liveTensors() !== live)
        problems.push(`left ${liveTensors() - live} tensors alive after its result was freed`);
    } else {
      const name = (error as Error)?.constructor?.name ?? typeof error;
      this.errorKinds.set(name, (this.errorKinds.get(name) ?? 0) + 1);
      if (!(error instanceof this.typed))
        problems.push(`untyped ${name}: ${(error as Error)?.message ?? String(error)}`);
      if (liveTensors() !== live)
        problems.push(`rejected but left ${liveTensors() - live} tensors alive`);
    }
    if (extra !== undefined) problems.push(extra);
    if (problems.length > 0) {
      const text = input();
      const clipped = text.length > 300 ? `${text.slice(0, 300)}...` : text;
      for (const p of problems) this.failures.push(`${what}: ${p}\n    input: ${clipped}`);
    }
    this.counts[outcome]++;
    return outcome;
  }

  /** The first `n` failures, for an assertion message. */
  report(n = 8): string {
    return this.failures.slice(0, n).join('\n');
  }

  /** Counts, error classes and the slowest call, for the test log. */
  summary(): string {
    return `${this.counts.ok} ok, ${this.counts.rejected} rejected; errors ${JSON.stringify(Object.fromEntries(this.errorKinds))}; slowest call ${this.slowestCpuMs.toFixed(1)} ms CPU, ${this.slowestWallMs.toFixed(1)} ms wall`;
  }
}
