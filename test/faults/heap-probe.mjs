// Loaded into a service process by the fault suite only (`node --expose-gc --import`), never by
// `pnpm start`: on SIGUSR2 it collects garbage to the end and writes the memory the process's
// JavaScript still holds to PIXELFLOW_HEAP_PROBE_FILE. A leak check compares those figures, not
// RSS: V8 keeps heap it has grown into long after the objects are gone, so RSS after a burst says
// more about when the collector last ran than about what was leaked.
import { writeFileSync } from 'node:fs';

const file = process.env.PIXELFLOW_HEAP_PROBE_FILE;
let answered = 0;

if (file && typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => {
    // Twice: objects with finalizers or weak references are freed by the collection after the one
    // that found them unreachable.
    globalThis.gc();
    globalThis.gc();
    const { heapUsed, external, arrayBuffers } = process.memoryUsage();
    answered += 1;
    writeFileSync(file, JSON.stringify({ answered, heapUsed, external, arrayBuffers }));
  });
}
