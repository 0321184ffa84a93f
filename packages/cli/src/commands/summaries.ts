// One line per command for `pixelflow --help`. They live here, not in the command modules, so
// that the help answers without loading those (and zod, onnxruntime and the rest they import):
// main.ts loads a command's module only to run it or print its usage.

export const CONVERT_SUMMARY = 'Convert a PixelFlow checkpoint into a model folder the service loads';
export const GENERATE_SUMMARY = 'Generate images of a class with a converted model, as PNG files';
export const EVAL_SUMMARY = 'Evaluate a class-conditional model: class accuracy and Fréchet distance by CFG and steps';
export const CUDA_SUMMARY = "Install onnxruntime's CUDA provider (opt-in) or check that it can load";
export const JOBS_SUMMARY = 'Create, watch, cancel and download jobs of a running service (--api URL)';
export const KEYS_SUMMARY = "Create, list and revoke a deployment's API keys (in its Redis: REDIS_URL, REDIS_PREFIX)";
