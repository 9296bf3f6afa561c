/**
 * `@diffuse/__NAME__`: __DESCRIPTION__
 *
 * @packageDocumentation
 */
export { hello } from './hello.js';
