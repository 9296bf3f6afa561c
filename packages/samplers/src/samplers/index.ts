/**
 * The built-in samplers. To add one: create `src/samplers/<name>.ts` exporting a `SamplerDefinition`
 * (`pnpm new sampler <name>` writes the skeleton) and add it to this list: one import, one entry.
 */

import type { SamplerDefinition } from '../types.js';
import { ddim, ddpm, eulerAncestral } from './ancestral.js';
import { deis } from './deis.js';
import { dpmAdaptive, dpmFast } from './dpm-fast.js';
import {
  dpmpp2m,
  dpmpp2mSde,
  dpmpp3m,
  dpmpp3mSde,
  dpmSolverMultistep,
} from './dpm-solver-multistep.js';
import { dpmSolverSinglestep } from './dpm-solver-singlestep.js';
import { dpm2, dpm2Ancestral } from './dpm2.js';
import { dpmpp2sAncestral, dpmppSde } from './dpmpp-singlestep.js';
import { euler } from './euler.js';
import { flowHeun } from './flow-heun.js';
import { heun } from './heun.js';
import { lms } from './lms.js';
import { odeDopri5 } from './ode.js';
import { plms, pndm } from './pndm.js';
import {
  annealedLangevin,
  eulerMaruyamaVE,
  eulerMaruyamaVP,
  predictorCorrector,
} from './score-sde.js';
import { unipc } from './unipc.js';

// biome-ignore lint/suspicious/noExplicitAny: definitions differ in their option types
export const BUILTIN_SAMPLERS: SamplerDefinition<any>[] = [
  euler,
  heun,
  dpm2,
  lms,
  eulerAncestral,
  dpm2Ancestral,
  dpmpp2sAncestral,
  dpmppSde,
  dpmpp2m,
  dpmpp3m,
  dpmpp2mSde,
  dpmpp3mSde,
  dpmSolverMultistep,
  dpmSolverSinglestep,
  ddim,
  ddpm,
  deis,
  unipc,
  pndm,
  plms,
  annealedLangevin,
  eulerMaruyamaVE,
  eulerMaruyamaVP,
  predictorCorrector,
  odeDopri5,
  dpmFast,
  dpmAdaptive,
  flowHeun,
  // new samplers above this line
];
