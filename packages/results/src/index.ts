export { LocalResultStore, ResultKeyError, resultKey, type ResultStore } from './result-store.ts';
