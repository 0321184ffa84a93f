import { z } from 'zod';

// What the API says about the model it serves and about its readiness: GET /models,
// GET /models/classes and GET /readyz. The API serialises with these; the web page reads them.

const ModelStatus = z.enum(['ready', 'loading', 'unavailable']).meta({
  description: 'ready: a worker has this model loaded; loading: a worker is loading it; unavailable: no live worker',
});

export const ModelInfo = z
  .object({
    name: z.string(),
    resolution: z.int(),
    stages: z.array(z.object({ index: z.int(), resolution: z.int() })),
    classes: z.int().meta({ description: 'Number of classes; GET /models/classes lists them' }),
    parameters: z.int(),
    dtype: z.string(),
    defaults: z.object({
      solver: z.string(),
      cfg_scale: z.number(),
      noise_shift: z.number(),
      steps: z.array(z.int()),
      num_images: z.int(),
      class_label: z.int(),
    }),
    status: ModelStatus,
    provider: z.string().nullable().meta({ description: 'Execution provider of the ready worker (cpu or cuda)' }),
    workers: z.int().meta({ description: 'Live workers serving this model' }),
  })
  .meta({ id: 'ModelInfo' });
export type ModelInfo = z.infer<typeof ModelInfo>;

export const ModelList = z.object({ models: z.array(ModelInfo) });
export type ModelList = z.infer<typeof ModelList>;

export const ClassList = z.object({ classes: z.array(z.object({ index: z.int(), name: z.string() })) });
export type ClassList = z.infer<typeof ClassList>;

export const Readiness = z.object({ status: z.literal('ready'), workers: z.int() });
export type Readiness = z.infer<typeof Readiness>;
