import { DiffuseError } from '@diffuse/backend';

/** Export or inference through ONNX failed; the message says which kernel, tensor or file. */
export class OnnxError extends DiffuseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ONNX', message, options);
  }
}
