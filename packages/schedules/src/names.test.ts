import { describe, expect, it } from 'vitest';
import { BUILTIN_SCHEDULE_NAMES, listSchedules, type ScheduleName } from './index.js';

describe('schedule names as types', () => {
  it('BUILTIN_SCHEDULE_NAMES (the ScheduleNames keys) are exactly the registered built-ins, in order', () => {
    expect(listSchedules()).toEqual([...BUILTIN_SCHEDULE_NAMES]);
  });

  it('a typo is a compile error (checked by tsc: pnpm typecheck, and the consumer check)', () => {
    // @ts-expect-error: 'cosin' is not a schedule name
    const typo: ScheduleName = 'cosin';
    const known: ScheduleName = 'cosine';
    expect([typo, known]).toHaveLength(2);
  });
});
