import { packageConfig } from '@diffuse/config/tsup';

export default packageConfig({
  // tfjs-core has no exports entry for its gradient registrations; bundle that one deep import.
  noExternal: [/^@tensorflow\/tfjs-core\/dist\//],
});
