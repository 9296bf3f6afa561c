// Stands in for Node built-ins that upstream bundles import only for side effects (tsup shims); unused in the page.
export {};
