// Compiled by tsc (strict, exactOptionalPropertyTypes, skipLibCheck false) against the installed
// packages' .d.ts under node16 and bundler resolution: every entry point resolves with types.
import type { BackendInfo } from '@diffuse/backend';
import '@diffuse/backend/wasm';
import type { ToyDistribution } from '@diffuse/data';
import type { ClassifierFreeGuidanceOptions } from '@diffuse/guidance';
import type { DenoisingLossOptions } from '@diffuse/losses';
import type { Mlp } from '@diffuse/models';
import { loadModelFiles } from '@diffuse/models/node';
import type { OnnxOptions } from '@diffuse/onnx';
import type { OnnxWebOptions } from '@diffuse/onnx/web';
import type { PipelineOptions } from '@diffuse/pipelines';
import {
  getSampler,
  registerSampler,
  type SampleOptions,
  type SchedulerConfigOverrides,
} from '@diffuse/samplers';
import { CosineSchedule } from '@diffuse/schedules';
import type { TrainerOptions } from '@diffuse/train';
import { program } from './program.js';

export type Used = [
  BackendInfo,
  ToyDistribution,
  ClassifierFreeGuidanceOptions,
  DenoisingLossOptions,
  Mlp,
  OnnxOptions,
  OnnxWebOptions,
  PipelineOptions,
  SampleOptions,
  TrainerOptions<unknown>,
];
export const used = [loadModelFiles, program, new CosineSchedule()];

// Sampler names: a typo fails to compile; a sampler registered here type-checks once declared.
declare module '@diffuse/samplers' {
  interface SamplerNames {
    consumer_euler: true;
  }
}
registerSampler({ ...getSampler('euler'), name: 'consumer_euler' });
export const custom: SampleOptions = { sampler: 'consumer_euler', steps: 4, shape: [2, 2] };
// @ts-expect-error: 'dpmpp_2mm' is not a sampler name
export const typo: SampleOptions = { sampler: 'dpmpp_2mm', steps: 4, shape: [2, 2] };

// Scheduler class names: a misspelled _class_name in fromConfig's overrides fails to compile.
export const swap: SchedulerConfigOverrides = { _class_name: 'DPMSolverMultistepScheduler' };
// @ts-expect-error: 'DPMSolverMultiStepScheduler' (capital S) is not a scheduler class
export const classTypo: SchedulerConfigOverrides = { _class_name: 'DPMSolverMultiStepScheduler' };
