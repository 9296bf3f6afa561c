/** Where Debian's `chromium` package installs the browser; `CHROMIUM_PATH` overrides it. */
export declare const CHROMIUM_PATH: string;
/** Launch flags for `chromium.launchPersistentContext(freshTmpDir, { args })`. */
export declare const CHROMIUM_ARGS: readonly string[];
