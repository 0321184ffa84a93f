import type { ResolvedGeneration } from '@pixelflow/schemas';

// "Copy as curl": the request that makes exactly these images again, from any shell.

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** With AUTH=on the command names a shell variable, never the key itself: copied text travels. */
export function curlFor(origin: string, parameters: ResolvedGeneration, withApiKey = false): string {
  const body: Record<string, unknown> = {
    class: parameters.class_label,
    num_images: parameters.num_images,
    seed: parameters.seed,
    cfg_scale: parameters.cfg_scale,
    solver: parameters.solver,
  };
  if (parameters.solver === 'euler') {
    body['noise_shift'] = parameters.noise_shift;
    body['steps'] = parameters.steps;
  }
  return `curl -s -X POST ${shellQuote(`${origin}/jobs`)} -H 'content-type: application/json'${withApiKey ? ' -H "Authorization: Bearer $PIXELFLOW_API_KEY"' : ''} -d ${shellQuote(JSON.stringify(body))}`;
}
