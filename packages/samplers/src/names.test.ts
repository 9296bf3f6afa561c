import { describe, expect, it } from 'vitest';
import { BUILTIN_SAMPLER_NAMES, listSamplers, type SamplerName } from './index.js';

describe('sampler names as types', () => {
  it('BUILTIN_SAMPLER_NAMES (the SamplerNames keys) are exactly the registered built-ins, in order', () => {
    expect(listSamplers().map((s) => s.name)).toEqual([...BUILTIN_SAMPLER_NAMES]);
  });

  it('a typo is a compile error (checked by tsc: pnpm typecheck, and the consumer check)', () => {
    // @ts-expect-error: 'dpmpp_2mm' is not a sampler name
    const typo: SamplerName = 'dpmpp_2mm';
    const known: SamplerName = 'dpmpp_2m';
    expect([typo, known]).toHaveLength(2);
  });
});
