import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GenerationError } from '@pixelflow/schemas';
import { UsageError } from './errors.ts';
import { didYouMean } from './suggest.ts';

// Command-line flag handling shared by the subcommands: parseArgs with errors and --help handled
// the same way everywhere, numbers read the same way, Node's parseArgs errors said in the user's terms, and the generation
// request's errors named by the flag the user typed.

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A flag's text as a number when it reads as one; otherwise the text itself,
 * which the request schema then rejects with the flag's rule ("must be an
 * integer from 1 to 8, not "abc""), so every range is stated in one place.
 */
export function numeric(text: string): number | string {
  const trimmed = text.trim();
  return NUMBER.test(trimmed) ? Number(trimmed) : text;
}

/** `N` or `N,N,...`: one number for every stage, or a list, as the request's `steps` takes them. */
export function stepsValue(text: string): number | string | (number | string)[] {
  return text.includes(',') ? text.split(',').map(numeric) : numeric(text);
}

/** Node's parseArgs messages are long and mention APIs; say what the user did instead. */
function usageErrorFrom(error: unknown, command: string, options: Options): UsageError {
  const { code, message } = error as { code?: string; message: string };
  const option = /'(-[^' ]+)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) {
    const known = [...Object.keys(options), 'help'].map((name) => `--${name}`);
    const suggestion = option.startsWith('--') ? didYouMean(option.split('=')[0] as string, known) : '';
    return new UsageError(`unknown option ${option}${suggestion} (see pixelflow ${command} --help)`, { command });
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option && message.includes('ambiguous')) {
    // `--seed -1`: parseArgs will not take a value that looks like an option.
    return new UsageError(`${option} needs a value; write ${option}=VALUE for one that starts with '-'`, { command });
  }
  return new UsageError(message.split('\n')[0] ?? message, { command });
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Node's parseArgs (strict, positionals allowed) with our conventions: its errors become one-line
 * UsageErrors naming `command`, and `--help` / `-h` wins even next to a mistake. `'help'` when asked.
 */
export function parseFlags<const O extends Options>(command: string, args: readonly string[], options: O) {
  const asksForHelp = args.includes('--help') || args.includes('-h');
  try {
    const parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: { ...options, help: { type: 'boolean', short: 'h', default: false } } as const,
    });
    return asksForHelp ? ('help' as const) : parsed;
  } catch (error) {
    if (asksForHelp) return 'help' as const;
    throw usageErrorFrom(error, command, options);
  }
}

/** `--threads`: onnxruntime threads per operator, 1..1024; undefined leaves onnxruntime's default. */
export function parseThreads(text: string | undefined, command: string): number | undefined {
  if (text === undefined) return undefined;
  const threads = Number(text);
  if (!/^\d+$/.test(text.trim()) || threads < 1 || threads > 1024) {
    throw new UsageError(`--threads must be an integer from 1 to 1024, not '${text}'`, { command });
  }
  return threads;
}

/** Generation request fields as the user knows them: by their flags. */
const REQUEST_FLAGS: Record<string, string> = {
  class: '--class',
  num_images: '--count',
  seed: '--seed',
  cfg_scale: '--cfg',
  noise_shift: '--shift',
  steps: '--steps',
  solver: '--solver',
};

/** `steps has 3 entries ...` -> `--steps has 3 entries ...`; `steps[2] must ...` -> `--steps entry 3 must ...`. */
export function flagMessage(error: GenerationError): string {
  return fieldFlagMessage(error.field, error.reason) ?? error.message;
}

/**
 * A request field's problem in the user's terms: `['steps', 2]` and "must be ..." ->
 * `--steps entry 3 must be ...`; null for a field that has no flag.
 */
export function fieldFlagMessage(path: readonly (string | number)[], reason: string): string | null {
  const [field, ...rest] = path;
  if (typeof field !== 'string' || !Object.hasOwn(REQUEST_FLAGS, field)) return null;
  const entry = typeof rest[0] === 'number' ? ` entry ${rest[0] + 1}` : '';
  return `${REQUEST_FLAGS[field]}${entry} ${reason}`;
}

/** The flags of a generation request, as generate and jobs create take them. */
export const GENERATION_FLAGS = {
  class: { type: 'string' },
  count: { type: 'string' },
  seed: { type: 'string' },
  cfg: { type: 'string' },
  shift: { type: 'string' },
  steps: { type: 'string' },
  solver: { type: 'string' },
} as const satisfies Options;

/** The request those flags make, JSON-ish: numbers where a flag reads as one, the text otherwise. */
export function requestFromFlags(values: { [K in keyof typeof GENERATION_FLAGS]?: string | undefined }): Record<string, unknown> {
  const request: Record<string, unknown> = {};
  if (values.class !== undefined) request['class'] = numeric(values.class);
  if (values.count !== undefined) request['num_images'] = numeric(values.count);
  if (values.seed !== undefined) request['seed'] = numeric(values.seed);
  if (values.cfg !== undefined) request['cfg_scale'] = numeric(values.cfg);
  if (values.shift !== undefined) request['noise_shift'] = numeric(values.shift);
  if (values.steps !== undefined) request['steps'] = stepsValue(values.steps);
  if (values.solver !== undefined) request['solver'] = values.solver;
  return request;
}
