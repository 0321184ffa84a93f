export { DEFAULT_MODEL_DIR, loadModelDir, MANIFEST_FILE, ModelDirError, type ModelDir } from './model-dir.ts';
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
export { encodePng, pngChunk, PngError, readPngChunks, readPngText, type EncodePngOptions, type PngChunk, type PngFilter } from './png.ts';
export { PngEncoderPool, type PngEncoderPoolOptions } from './png-pool.ts';
export { encodeGeneratedPngs, encodeGeneratedPngsWith } from './generated-pngs.ts';
