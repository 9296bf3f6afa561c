import { expect, it } from 'vitest';
import { hello } from './index.js';

it('greets', () => {
  expect(hello('diffusion')).toBe('hello, diffusion');
});
