import { packageConfig } from '@diffuse/config/tsup';

export default packageConfig();
