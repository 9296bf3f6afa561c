// tfjs-core on its own registers no gradients; the union package `@tensorflow/tfjs` does it with this
// import. Importing it here makes training work with tfjs-core alone (see STACK.md). The deep import is
// bundled by tsup because tfjs-core's exports map does not expose it.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
