/**
 * The workspace's manifests: what every published package declares, and that private packages stay
 * out of changesets and out of published manifests.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const workspace = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
type Manifest = Record<string, unknown> & { name: string; private?: boolean };
const manifests: (Manifest & { dir: string })[] = ['packages', 'apps', 'tooling'].flatMap((group) =>
  readdirSync(join(workspace, group), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => {
      try {
        const m = JSON.parse(readFileSync(join(workspace, group, e.name, 'package.json'), 'utf8'));
        return [{ ...m, dir: `${group}/${e.name}` }];
      } catch {
        return []; // tooling/template holds templates, not a package
      }
    }),
);
const published = manifests.filter((m) => m.private !== true);
const privateNames = manifests.filter((m) => m.private === true).map((m) => m.name);

describe('manifests', () => {
  it('finds the published packages', () => {
    expect(published.map((m) => m.dir)).toEqual(
      expect.arrayContaining(['packages/backend', 'packages/samplers']),
    );
    expect(published.every((m) => m.dir.startsWith('packages/'))).toBe(true);
  });

  it.each(published.map((m) => [m.name, m] as const))(
    '%s has license, repository, engines, sideEffects and a peer range for tfjs-core',
    (_name, m) => {
      expect(m.license).toBe('MIT');
      expect(m.repository).toMatchObject({ type: 'git', directory: m.dir });
      expect(m.engines).toEqual({ node: '>=20' });
      expect(
        m.sideEffects === true || m.sideEffects === false || Array.isArray(m.sideEffects),
      ).toBe(true);
      const peers = m.peerDependencies as Record<string, string>;
      expect(peers['@tensorflow/tfjs-core']).toBe('^4.22.0');
      const deps = Object.keys((m.dependencies as Record<string, string> | undefined) ?? {});
      for (const name of privateNames)
        expect(deps, `${m.name} depends on ${name}`).not.toContain(name);
      expect(deps.filter((d) => d.startsWith('@tensorflow/'))).toEqual([]);
    },
  );

  it('the tfjs backends are optional peers of @diffuse/backend', () => {
    const backend = published.find((m) => m.name === '@diffuse/backend');
    const meta = backend?.peerDependenciesMeta as Record<string, { optional: boolean }>;
    for (const b of ['cpu', 'wasm', 'webgl', 'webgpu']) {
      expect(meta[`@tensorflow/tfjs-backend-${b}`]).toEqual({ optional: true });
    }
  });

  it('changesets ignore every private workspace package (no version bumps for apps and tooling)', () => {
    const config = JSON.parse(readFileSync(join(workspace, '.changeset/config.json'), 'utf8'));
    expect([...config.ignore].sort()).toEqual([...privateNames].sort());
  });

  it('packing drops devDependencies (.pnpmfile.cjs beforePacking)', async () => {
    const { createRequire } = await import('node:module');
    const hooks = createRequire(import.meta.url)(join(workspace, '.pnpmfile.cjs')).hooks;
    const packed = hooks.beforePacking({
      name: 'x',
      devDependencies: { '@diffuse/config': 'workspace:*' },
    });
    expect(packed).toEqual({ name: 'x' });
  });
});
