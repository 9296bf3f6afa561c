/**
 * RePaint's resampling schedule (Lugmayr et al. 2022, "RePaint: Inpainting using Denoising Diffusion
 * Probabilistic Models", sec. 4.2 "Resampling" and Algorithm 1; the reference `get_schedule_jump`,
 * diffusers' `RePaintScheduler.set_timesteps`).
 *
 * States are indexed by noise: state N is the noisiest level, state 0 the last (clean) one. The walk
 * goes down one state at a time; every `jumpLength` states (at 0, J, 2J, ... < N - J) it jumps back
 * up J states, `resampleCount - 1` times, so that the known and generated regions are harmonised
 * by re-noising and denoising again. jumpLength = 1 is Algorithm 1 with U = resampleCount (except
 * at the first, noisiest step, where the reference schedule does not resample either).
 */
import { GuidanceError } from './errors.js';

/** The longest RePaint walk (states visited, so model calls) `repaintWalk` builds. */
export const REPAINT_MAX_WALK = 10_000_000;

/** Options of the RePaint walk. */
export interface RepaintScheduleOptions {
  /** J: how many states each jump goes back up (RePaint's `jump_length`, default 10). */
  jumpLength?: number;
  /** r: how many times each stretch is traversed (RePaint's `jump_n_sample`; 1 = no resampling; default 10). */
  resampleCount?: number;
}

/**
 * The RePaint walk over states N..0 as a list of state indices, starting at N and ending at 0;
 * consecutive entries differ by exactly one (down: a denoising step, up: a forward re-noising step).
 * Equals diffusers' `RePaintScheduler.timesteps` (shifted by one: its entry t is the state t + 1 -> t
 * move) for `num_inference_steps = N`.
 *
 * @example
 * repaintWalk(4, { jumpLength: 2, resampleCount: 2 }); // [4, 3, 2, 1, 0, 1, 2, 1, 0]
 */
export function repaintWalk(numSteps: number, options: RepaintScheduleOptions = {}): number[] {
  const jumpLength = options.jumpLength ?? 10;
  const resampleCount = options.resampleCount ?? 10;
  if (!Number.isInteger(numSteps) || numSteps < 1) {
    throw new GuidanceError(
      `the number of denoising steps must be an integer >= 1, got ${String(numSteps)}`,
    );
  }
  if (!Number.isInteger(jumpLength) || jumpLength < 1) {
    throw new GuidanceError(`jumpLength must be an integer >= 1, got ${String(jumpLength)}`);
  }
  if (!Number.isInteger(resampleCount) || resampleCount < 1) {
    throw new GuidanceError(`resampleCount must be an integer >= 1, got ${String(resampleCount)}`);
  }
  // 1 + N states down, and 2 J more for each of the r - 1 resamplings at each jump point: refuse a
  // walk no run could finish before building it (1e12 steps or resamplings would fill the heap).
  const jumpPoints = numSteps > jumpLength ? Math.ceil((numSteps - jumpLength) / jumpLength) : 0;
  const length = 1 + numSteps + 2 * jumpLength * (resampleCount - 1) * jumpPoints;
  if (!(length <= REPAINT_MAX_WALK))
    throw new GuidanceError(
      `RePaint's walk would take ${length} steps (steps ${numSteps}, jumpLength ${jumpLength}, resampleCount ${resampleCount}); at most ${REPAINT_MAX_WALK}`,
    );
  const jumps = new Map<number, number>();
  for (let j = 0; j < numSteps - jumpLength; j += jumpLength) jumps.set(j, resampleCount - 1);
  const walk = [numSteps];
  let n = numSteps;
  while (n >= 1) {
    n -= 1;
    walk.push(n);
    const left = jumps.get(n) ?? 0;
    if (left > 0) {
      jumps.set(n, left - 1);
      for (let k = 0; k < jumpLength; k++) walk.push(++n);
    }
  }
  return walk;
}
