export { loadModelDir, MANIFEST_FILE, ModelDirError, type ModelDir } from './model-dir.ts';
export {
  NpyError,
  parseNpy,
  readNpy,
  readNpyAs,
  serializeNpy,
  writeNpy,
  type NpyArray,
  type NpyArrayOf,
  type NpyDtype,
} from './npy.ts';
