export { imageKey, LocalResultStore, previewKey, ResultKeyError, resultKey, type ResultStore } from './result-store.ts';
