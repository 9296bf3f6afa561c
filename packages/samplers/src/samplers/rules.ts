/**
 * Option rules shared by several samplers (see `OptionRule`): noise scales and eta are >= 0. For eta
 * the semantics are k-diffusion's (`get_ancestral_step`): sigma_up = min(sigma_next, eta * sigma_ddim),
 * so eta > 1 is allowed and saturates at a full re-noise (sigma_down = 0) where eta * sigma_ddim
 * exceeds sigma_next. diffusers' DDIM takes sqrt(1 - alpha_prev - sigma_t^2) there and gives NaN; a
 * negative eta has no meaning in either (it would give sigma_up < 0) and is rejected.
 */
import type { OptionRule } from '../types.js';

/** eta >= 0 (any finite value; > 1 saturates as in k-diffusion). */
export const ETA: OptionRule = { min: 0 };
/** Noise multipliers (sNoise, sChurn, sTmin, sTmax): >= 0. */
export const NONNEGATIVE: OptionRule = { min: 0 };
/** A solver order 1, 2 or 3. */
export const ORDER_1_3: OptionRule = { integer: true, min: 1, max: 3 };
export const PREDICTION: OptionRule = { oneOf: ['x0', 'epsilon'] };
export const SOLVER_TYPE: OptionRule = { oneOf: ['midpoint', 'heun'] };
/** EDM churn options. */
export const CHURN_RULES = {
  sChurn: NONNEGATIVE,
  sTmin: NONNEGATIVE,
  sTmax: NONNEGATIVE,
  sNoise: NONNEGATIVE,
} as const;
