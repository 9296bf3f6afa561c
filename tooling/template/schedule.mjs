// `pnpm new schedule <name>`: adds a continuous noise schedule to @diffuse/schedules: writes
// src/continuous/<name>.ts, adds its line to BUILTIN in src/registry.ts and its name to
// BUILTIN_SCHEDULE_NAMES in src/names.ts (so `createSchedule('<name>')` type-checks), exports the class and its
// params type from src/index.ts, adds its row to the README's table, and formats the touched files
// with biome (so `pnpm lint` passes). The new file starts as a working schedule (logSNR linear in t between two
// parameters) with every method the interface needs; replace its math with yours. The shared
// conformance test (packages/schedules/src/registry.test.ts) then checks it: monotone logSNR, the
// endpoints, both inverses, dlogSNR/dt against finite differences, the tensor versions, and
// alpha^2 + sigma^2 = 1 when variancePreserving is true.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const pascal = (name) =>
  name
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');

/** @param {string} name @param {{ root: string, description: string }} options */
export async function create(name, { root, description }) {
  const dir = join(root, 'packages', 'schedules', 'src');
  const file = join(dir, 'continuous', `${name}.ts`);
  const registry = join(dir, 'registry.ts');
  if (existsSync(file)) {
    console.error(`packages/schedules/src/continuous/${name}.ts already exists`);
    process.exit(1);
  }
  const src = readFileSync(registry, 'utf8');
  if (src.includes(`'${name}':`) || src.includes(`  ${name}:`)) {
    console.error(`a schedule named '${name}' is already in src/registry.ts`);
    process.exit(1);
  }
  const cls = `${pascal(name)}Schedule`;
  const doc = description === 'A Diffuse package.' ? `The '${name}' noise schedule.` : description;
  writeFileSync(
    file,
    `/**
 * ${doc}
 *
 * Write the schedule's equations and the paper (section, equation) or reference implementation here.
 * Starting point: logSNR linear in t, lambda(t) = lambdaMax + (lambdaMin - lambdaMax) t, variance preserving.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import { BaseSchedule, type ScheduleConfig, readParams } from './schedule.js';

/** Parameters of \`${cls}\`. */
export interface ${cls}Params {
  logSNRMin?: number;
  logSNRMax?: number;
}

/**
 * ${doc}
 *
 * @example
 * const s = new ${cls}();
 * s.logSNR(0.5);
 */
export class ${cls} extends BaseSchedule {
  readonly name = '${name}';
  readonly variancePreserving = true;
  readonly params: Required<${cls}Params>;

  constructor(params: ${cls}Params = {}) {
    super();
    this.params = readParams('${name}', params as Record<string, unknown>, { logSNRMin: -10, logSNRMax: 10 });
    if (!(this.params.logSNRMax > this.params.logSNRMin)) {
      throw new ScheduleError(\`${name}: need logSNRMin < logSNRMax, got \${this.params.logSNRMin}, \${this.params.logSNRMax}\`);
    }
  }

  private get slope(): number {
    return this.params.logSNRMin - this.params.logSNRMax;
  }

  protected logSNRAt(t: number): number {
    return this.params.logSNRMax + this.slope * t;
  }

  protected dLogSNRdtAt(_t: number): number {
    return this.slope;
  }

  // Optional: a closed-form inverse (the default is bisection on logSNRAt).
  protected override tFromLogSNRChecked(logSNR: number): number {
    return Math.min(1, Math.max(0, (logSNR - this.params.logSNRMax) / this.slope));
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(tf.mul(t, this.slope), this.params.logSNRMax));
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.fill(t.shape, this.slope);
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, ...this.params };
  }
}
`,
  );
  const importLine = `import { ${cls} } from './continuous/${name}.js';\n`;
  const withImport = src.replace(
    /(import [^\n]*from '\.\/continuous\/[^']*';\n)(?![\s\S]*from '\.\/continuous\/)/,
    `$1${importLine}`,
  );
  const withEntry = withImport.replace(
    /(const BUILTIN: Record<string, ScheduleFactory> = \{\n[\s\S]*?)(\n\};)/,
    `$1\n  '${name}': (p) => new ${cls}(p),$2`,
  );
  if (withEntry === withImport || withImport === src) {
    console.error(
      'could not find where to add the registry line in src/registry.ts; add it by hand',
    );
    process.exit(1);
  }
  writeFileSync(registry, withEntry);
  const names = join(dir, 'names.ts');
  const namesMarker = '  // new schedule names above this line';
  const namesSrc = readFileSync(names, 'utf8');
  if (!namesSrc.includes(namesMarker))
    throw new Error(`${names} has no '${namesMarker.trim()}' marker`);
  writeFileSync(names, namesSrc.replace(namesMarker, `  '${name}',\n${namesMarker}`));
  const index = join(dir, 'index.ts');
  const exportLine = `export { type ${cls}Params, ${cls} } from './continuous/${name}.js';\n`;
  const indexSrc = readFileSync(index, 'utf8');
  const firstContinuous = indexSrc.indexOf("from './continuous/");
  const at = indexSrc.lastIndexOf('\nexport ', firstContinuous) + 1;
  writeFileSync(index, `${indexSrc.slice(0, at)}${exportLine}${indexSrc.slice(at)}`);
  const readme = join(root, 'packages', 'schedules', 'README.md');
  const marker = '<!-- new schedules above this line -->';
  const readmeSrc = readFileSync(readme, 'utf8');
  if (readmeSrc.includes(marker)) {
    writeFileSync(
      readme,
      readmeSrc.replace(marker, `| \`${name}\` | \`${cls}\` | ${doc} |\n${marker}`),
    );
  }
  // format and sort imports and exports the way the repository's biome.json wants them
  execFileSync(
    join(root, 'node_modules', '.bin', 'biome'),
    ['check', '--write', file, registry, names, index],
    { cwd: root, stdio: 'ignore' },
  );
  console.log(
    `created packages/schedules/src/continuous/${name}.ts; registered '${name}' in src/registry.ts, ` +
      `exported ${cls} from src/index.ts and added its README row.\n` +
      `Next: write your math, then cd packages/schedules && pnpm vitest run src/registry.test.ts -t ${name}`,
  );
}
