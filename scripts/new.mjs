#!/usr/bin/env node
// Scaffolds a new package or module from a template.
//
//   pnpm new package <name> [--description "..."]   -> packages/<name>, published as @diffuse/<name>
//
// Packages that hold a registry (samplers, schedules, losses) document their own module templates
// in CONTRIBUTING.md; `pnpm new <kind> <name>` dispatches to tooling/template/<kind>.mjs when present.
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    description: { type: 'string', default: 'A Diffuse package.' },
    help: { type: 'boolean' },
  },
});
const [kind, name] = positionals;
const usage = 'usage: pnpm new package <name> [--description "..."] | pnpm new <kind> <name>';
if (values.help || !kind || !name) {
  console.log(usage);
  process.exit(values.help ? 0 : 1);
}
if (!/^[a-z][a-z0-9-]*$/.test(name)) {
  console.error(
    `name '${name}' must be lower-case letters, digits and dashes, starting with a letter`,
  );
  process.exit(1);
}

if (kind === 'package') {
  const dest = join(root, 'packages', name);
  if (existsSync(dest)) {
    console.error(`packages/${name} already exists`);
    process.exit(1);
  }
  cpSync(join(root, 'tooling', 'template', 'package'), dest, { recursive: true });
  const fill = (dir) => {
    for (const entry of readdirSync(dir)) {
      const p = join(dir, entry);
      if (statSync(p).isDirectory()) fill(p);
      else
        writeFileSync(
          p,
          readFileSync(p, 'utf8')
            .replaceAll('__NAME__', name)
            .replaceAll('__DESCRIPTION__', values.description),
        );
    }
  };
  fill(dest);
  console.log(
    `created packages/${name} (@diffuse/${name}). Next: pnpm install && pnpm --filter @diffuse/${name} test`,
  );
} else {
  const generator = join(root, 'tooling', 'template', `${kind}.mjs`);
  if (!existsSync(generator)) {
    console.error(`unknown kind '${kind}'. ${usage}`);
    process.exit(1);
  }
  const mod = await import(pathToFileURL(generator).href);
  await mod.create(name, { root, description: values.description });
}
