/**
 * Log-likelihood through the probability-flow ODE (Song et al. 2021, sec. 4.3 and appendix D.2;
 * Chen et al. 2018, instantaneous change of variables; k-diffusion `log_likelihood`).
 */
import { Random } from '@diffuse/backend';
import type { Conditioning, Denoiser } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from './errors.js';
import { type Dopri5Options, dopri5 } from './ode.js';
import { RunScope } from './run.js';
import { denoiseVE } from './sample.js';
import type { SamplerResume, SamplerYield } from './types.js';

/** Options of `logLikelihood`. */
export interface LogLikelihoodOptions extends Partial<Dopri5Options> {
  /** The data is taken as the state at sigmaMin (default 1e-3); the prior is N(0, sigmaMax^2 I) (default 80). */
  sigmaMin?: number;
  sigmaMax?: number;
  /** `exact`: the Jacobian trace from one backward pass per dimension; `hutchinson`: v^T J v with random probes. Default: exact up to 16 dimensions. */
  trace?: 'exact' | 'hutchinson';
  /** Hutchinson probe distribution (default Rademacher). */
  probe?: 'rademacher' | 'gaussian';
  /** Number of Hutchinson probes averaged (fixed over the solve; default 1). */
  probes?: number;
  seed?: number;
  rng?: Random;
  /** The (alpha, sigma) the denoiser sees for a VE level (default VP). */
  embedding?: 'vp' | 've';
  cond?: Conditioning;
}

/** What `logLikelihood` returns, per example. */
export interface LogLikelihoodResult {
  /** log p(x0) in nats. */
  nats: Float64Array;
  /** -log2 p(x0) / D: bits per dimension (no dequantisation offset). */
  bitsPerDim: Float64Array;
  /** The prior term log N(x(sigmaMax); 0, sigmaMax^2 I) and the integrated divergence. */
  prior: Float64Array;
  delta: Float64Array;
  /** Model (function) evaluations of the ODE right-hand side. */
  nfe: number;
}

/**
 * Checks `cond` against a batch of `batch` examples: a tensor whose leading dimension is `batch` is
 * per-example; one of rank 0 or leading dimension 1 broadcasts; any other tensor is a `SamplerError`
 * naming its key.
 */
function checkConditioning(cond: Conditioning | undefined, batch: number): void {
  for (const [key, v] of Object.entries(cond ?? {})) {
    if (!(v instanceof tf.Tensor) || v.rank === 0) continue;
    const n = v.shape[0]!;
    if (n !== batch && n !== 1) {
      throw new SamplerError(
        `cond.${key} has shape [${v.shape.join(', ')}]: its leading dimension must be x0's batch of ${batch} (one per example) or 1 (shared)`,
      );
    }
  }
}

/**
 * The conditioning for `reps` stacked copies of the batch, [x; x; ...; x] along axis 0: every
 * per-example tensor (leading dimension `batch`) is stacked the same way, so row j * batch + b keeps
 * example b's conditioning; scalars, shared ([1, ...]) tensors and plain values are passed as given.
 * New tensors are returned in `owned` (the caller disposes them).
 */
function repeatConditioning(
  cond: Conditioning | undefined,
  batch: number,
  reps: number,
): { cond: Conditioning | undefined; owned: tf.Tensor[] } {
  if (cond === undefined || reps === 1) return { cond, owned: [] };
  const out: Conditioning = {};
  const owned: tf.Tensor[] = [];
  for (const [key, v] of Object.entries(cond)) {
    if (v instanceof tf.Tensor && v.rank > 0 && v.shape[0] === batch) {
      const t = tf.concat(new Array<tf.Tensor>(reps).fill(v), 0);
      owned.push(t);
      out[key] = t;
    } else out[key] = v;
  }
  return { cond: out, owned };
}

/**
 * log p_sigmaMin(x0) = log N(x(sigmaMax); 0, sigmaMax^2 I) + integral over log sigma of div_x (x - D(x; sigma)),
 * where x(sigma) follows the probability-flow ODE dx/dlog sigma = x - D from x(sigmaMin) = x0, solved
 * with adaptive Dormand-Prince 5(4). The divergence is dim - tr(dD/dx): exact (one vector-Jacobian
 * product per dimension) or Hutchinson's v^T (dD/dx) v with fixed Rademacher or Gaussian probes.
 * `x0` is [batch, ...dims], data-scaled. With `cond`, the result is the conditional log p(x0 | cond):
 * the model is evaluated on internal batches of `dim` (exact trace) or `probes` (Hutchinson) stacked
 * copies of x0, and every per-example conditioning tensor (leading dimension batch, e.g. class
 * `labels` [batch]) is stacked with them in the same order.
 *
 * @example
 * const { nats, bitsPerDim } = await logLikelihood(gm.denoiser('epsilon'), x0, { rtol: 1e-5, atol: 1e-5 });
 */
export async function logLikelihood(
  denoiser: Denoiser,
  x0: tf.Tensor,
  options: LogLikelihoodOptions = {},
): Promise<LogLikelihoodResult> {
  const sigmaMin = options.sigmaMin ?? 1e-3;
  const sigmaMax = options.sigmaMax ?? 80;
  if (!(sigmaMin > 0) || !(sigmaMax > sigmaMin) || !Number.isFinite(sigmaMax)) {
    throw new SamplerError(
      `logLikelihood needs 0 < sigmaMin < sigmaMax < infinity, got ${sigmaMin}, ${sigmaMax}`,
    );
  }
  if (x0.rank < 2)
    throw new SamplerError(`x0 must be [batch, ...dims], got shape [${x0.shape.join(', ')}]`);
  const batch = x0.shape[0]!;
  const dim = x0.size / batch;
  const trace = options.trace ?? (dim <= 16 ? 'exact' : 'hutchinson');
  if (trace !== 'exact' && trace !== 'hutchinson')
    throw new SamplerError(`trace must be 'exact' or 'hutchinson', got '${trace}'`);
  const probe = options.probe ?? 'rademacher';
  if (probe !== 'rademacher' && probe !== 'gaussian')
    throw new SamplerError(`probe must be 'rademacher' or 'gaussian', got '${probe}'`);
  const nProbes = options.probes ?? 1;
  if (!Number.isInteger(nProbes) || nProbes < 1)
    throw new SamplerError(`probes must be a positive integer, got ${nProbes}`);
  checkConditioning(options.cond, batch);
  const embedding = options.embedding ?? 'vp';
  const level = (s: number) =>
    embedding === 've'
      ? { alpha: 1, sigma: s }
      : { alpha: 1 / Math.sqrt(1 + s * s), sigma: s / Math.sqrt(1 + s * s) };
  const scope = new RunScope();
  const ctx = scope.context(
    () => x0.shape,
    () => {
      throw new SamplerError('logLikelihood draws no noise');
    },
  );
  const rng = options.rng ?? Random.seed(options.seed ?? 0);
  const vs: tf.Tensor[] = [];
  if (trace === 'hutchinson') {
    for (let p = 0; p < nProbes; p++)
      vs.push(scope.keep(probe === 'rademacher' ? rng.rademacher(x0.shape) : rng.normal(x0.shape)));
  }
  // The model sees `reps` stacked copies of the batch: one per dimension (exact) or per probe.
  const reps = trace === 'exact' ? dim : vs.length;
  const repeated = repeatConditioning(options.cond, batch, reps);
  for (const t of repeated.owned) scope.keep(t);
  const sumDims = (t: tf.Tensor) =>
    t.rank > 1
      ? tf.sum(
          t,
          [...Array(t.rank - 1).keys()].map((k) => k + 1),
        )
      : t;
  let nfe = 0;
  // dx/du = x - D,  d(delta)/du = dim - tr(dD/dx)   (u = log sigma)
  const rhs = function* (
    u: number,
    y: readonly tf.Tensor[],
  ): Generator<SamplerYield, tf.Tensor[], SamplerResume> {
    nfe++;
    const s = Math.exp(u);
    const l = level(s);
    const D = (x: tf.Tensor) => denoiseVE(denoiser, x, l, repeated.cond, 0);
    const x = y[0]!;
    const out = tf.tidy(() => {
      // One forward and one backward pass on a tiled batch: block j holds x again, weighted by
      // e_j (exact trace: block j yields row j of dD/dx) or by probe j (Hutchinson).
      const xt = tf.concat(new Array(reps).fill(x), 0);
      const W =
        trace === 'exact'
          ? tf.reshape(
              tf.oneHot(
                tf.tensor1d(
                  Array.from({ length: reps * batch }, (_, r) => Math.floor(r / batch)),
                  'int32',
                ),
                dim,
              ),
              xt.shape,
            )
          : tf.concat(vs, 0);
      let denoised: tf.Tensor | null = null;
      const g = tf.grad((xx: tf.Tensor) => {
        const d = D(xx);
        denoised = tf.keep(d);
        return tf.sum(tf.mul(d, W));
      })(xt);
      const rows = tf.reshape(sumDims(tf.mul(g, W)), [reps, batch]);
      const tr = trace === 'exact' ? tf.sum(rows, 0) : tf.mean(rows, 0);
      const d0 = tf.slice(denoised!, 0, batch);
      (denoised as tf.Tensor | null)?.dispose();
      return [tf.sub(x, d0), tf.sub(dim, tr)];
    });
    return out;
  };
  try {
    const x = scope.keep(tf.clone(x0));
    const delta0 = scope.keep(tf.zeros([batch]));
    const program = dopri5(
      ctx,
      rhs,
      [x, delta0],
      [Math.log(sigmaMin), Math.log(sigmaMax)],
      {
        rtol: options.rtol ?? 1e-5,
        atol: options.atol ?? 1e-5,
        hInit: options.hInit ?? 0.1,
        maxSteps: options.maxSteps ?? 10000,
      },
      function* () {},
    );
    let input: SamplerResume;
    let r = program.next();
    while (!r.done) {
      const y = r.value;
      if (y.kind !== 'read') throw new SamplerError(`internal: unexpected ${y.kind} request`);
      const v = await y.tensor.data();
      input = v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
      r = program.next(input);
    }
    const [xT, delta] = r.value;
    const [xv, dv] = await Promise.all([xT!.data(), delta!.data()]);
    const nats = new Float64Array(batch);
    const bpd = new Float64Array(batch);
    const prior = new Float64Array(batch);
    const del = new Float64Array(batch);
    const c = -0.5 * dim * Math.log(2 * Math.PI * sigmaMax * sigmaMax);
    for (let b = 0; b < batch; b++) {
      let q = 0;
      for (let k = 0; k < dim; k++) q += xv[b * dim + k]! ** 2;
      prior[b] = c - q / (2 * sigmaMax * sigmaMax);
      del[b] = dv[b]!;
      nats[b] = prior[b]! + del[b]!;
      bpd[b] = -nats[b]! / (dim * Math.LN2);
      if (!Number.isFinite(nats[b]!))
        throw new SamplerError(`logLikelihood of example ${b} is ${nats[b]}`);
    }
    return { nats, bitsPerDim: bpd, prior, delta: del, nfe };
  } finally {
    scope.disposeAll();
  }
}
