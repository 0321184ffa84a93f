import { discardSpareSessionThread, startSessionThreadEarly } from '@pixelflow/onnx/session-thread';
import { CONVERT_SUMMARY, CUDA_SUMMARY, EVAL_SUMMARY, GENERATE_SUMMARY, JOBS_SUMMARY, KEYS_SUMMARY } from './commands/summaries.ts';
import { CliError, UsageError } from './errors.ts';
import { didYouMean } from './suggest.ts';
import { versionLine } from './version.ts';

// Entry point of the `pixelflow` command: picks the subcommand and turns
// errors into one line on stderr plus an exit status (2 for bad input).
// A command's module is loaded only when it is used: `pixelflow --help` and bad
// command names answer without loading zod, onnxruntime and the rest.

interface Command {
  summary: string;
  /** Loads an onnxruntime session: its thread is started before the command's module is imported. */
  runsModel?: true;
  /** The command's module: its usage text and what runs it. */
  load(): Promise<LoadedCommand>;
}

interface LoadedCommand {
  usage: string;
  /** Resolves with the exit status. */
  run(args: readonly string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  convert: {
    summary: CONVERT_SUMMARY,
    load: async () => {
      const { CONVERT_USAGE, convertCommand } = await import('./commands/convert.ts');
      return { usage: CONVERT_USAGE, run: convertCommand };
    },
  },
  generate: {
    summary: GENERATE_SUMMARY,
    runsModel: true,
    load: async () => {
      const { GENERATE_USAGE, generateCommand } = await import('./commands/generate.ts');
      return { usage: GENERATE_USAGE, run: generateCommand };
    },
  },
  eval: {
    summary: EVAL_SUMMARY,
    runsModel: true,
    load: async () => {
      const { EVAL_USAGE, evalCommand } = await import('./commands/eval.ts');
      return { usage: EVAL_USAGE, run: evalCommand };
    },
  },
  jobs: {
    summary: JOBS_SUMMARY,
    load: async () => {
      const { JOBS_USAGE, jobsCommand } = await import('./commands/jobs.ts');
      return { usage: JOBS_USAGE, run: jobsCommand };
    },
  },
  keys: {
    summary: KEYS_SUMMARY,
    load: async () => {
      const { KEYS_USAGE, keysCommand } = await import('./commands/keys.ts');
      return { usage: KEYS_USAGE, run: keysCommand };
    },
  },
  cuda: {
    summary: CUDA_SUMMARY,
    load: async () => {
      const { CUDA_USAGE, cudaCommand } = await import('./commands/cuda.ts');
      return { usage: CUDA_USAGE, run: cudaCommand };
    },
  },
};

const USAGE = `Usage: pixelflow <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`)
  .join('\n')}

Run 'pixelflow <command> --help' for a command's options, 'pixelflow --version' for versions.
`;

function lookup(name: string): Command {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    const suggestion = didYouMean(name, Object.keys(COMMANDS));
    throw new UsageError(`unknown command '${name}'${suggestion} (commands: ${Object.keys(COMMANDS).join(', ')}; see pixelflow --help)`);
  }
  return command;
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${versionLine()}\n`);
    return 0;
  }
  if (name === 'help') {
    process.stdout.write(rest[0] === undefined ? USAGE : (await lookup(rest[0]).load()).usage);
    return 0;
  }
  if (name.startsWith('-')) throw new UsageError(`unknown option ${name}${didYouMean(name, ['--help', '--version'])} (see pixelflow --help)`);
  const command = lookup(name);
  // The session's thread and onnxruntime-node load meanwhile (session-thread.ts).
  if (command.runsModel && !rest.some((arg) => arg === '--help' || arg === '-h')) startSessionThreadEarly();
  return (await command.load()).run(rest);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof CliError) {
    process.stderr.write(`pixelflow${error.command === undefined ? '' : ` ${error.command}`}: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else {
    // A bug, not bad input: keep the stack for the report.
    process.stderr.write(`pixelflow: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
} finally {
  await discardSpareSessionThread();
}
