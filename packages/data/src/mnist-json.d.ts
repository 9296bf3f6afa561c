// The digit files of the `mnist` package: `{ "data": number[] }` (784 grey levels in [0, 1] per image).
declare module 'mnist/src/digits/*.json' {
  const value: { data: number[] };
  export default value;
}
