// pnpm hooks for this workspace.
//
// beforePacking: the manifest `pnpm pack` / `pnpm publish` put in a tarball. devDependencies are
// what builds and tests this repository (the private @diffuse/config presets, test-only packages);
// an installed package never uses them, and a published manifest should name no private package.
module.exports = {
  hooks: {
    beforePacking(pkg) {
      delete pkg.devDependencies;
      return pkg;
    },
  },
};
