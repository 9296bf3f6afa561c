/**
 * Every toy distribution by name, for apps and CLIs that pick one from a string. Add a toy in one
 * file under `toys/` plus one line here; the shared tests in `registry.test.ts` pick it up.
 */
import { InvalidArgumentError } from '@diffuse/backend';
import { checkerboard } from './checkerboard.js';
import { eightGaussians } from './gaussian-mixture.js';
import { spirals } from './spirals.js';
import { swissRoll } from './swiss-roll.js';
import type { ToyDistribution } from './toy.js';
import { twoMoons } from './two-moons.js';

/** The toy distributions by name, each with its default options. */
export const TOYS = {
  'two-moons': () => twoMoons(),
  'swiss-roll': () => swissRoll(),
  checkerboard: () => checkerboard(),
  'eight-gaussians': () => eightGaussians(),
  spirals: () => spirals(),
} as const satisfies Record<string, () => ToyDistribution>;

/** A registered toy name. */
export type ToyName = keyof typeof TOYS;

/**
 * The toy distribution called `name`, with default options.
 *
 * @example
 * const toy = toyDistribution('two-moons');
 * const { x } = toy.sample(100, Random.seed(0));
 */
export function toyDistribution(name: string): ToyDistribution {
  const make = (TOYS as Record<string, () => ToyDistribution>)[name];
  if (make === undefined) {
    throw new InvalidArgumentError(
      `unknown toy distribution '${name}'; known: ${Object.keys(TOYS).join(', ')}`,
    );
  }
  return make();
}
