/**
 * Replace this module with the package's first real one.
 *
 * @example
 * hello('diffusion'); // 'hello, diffusion'
 */
export function hello(name: string): string {
  return `hello, ${name}`;
}
