/**
 * An error the CLI reports as one line and exits with `exitCode`: `pixelflow: <message>`, or
 * `pixelflow <command>: <message>` when it names the subcommand it comes from.
 */
export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: number;
  readonly command: string | undefined;

  constructor(message: string, exitCode = 1, options: { command?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = exitCode;
    this.command = options.command;
  }
}

/** Bad command-line input: exit status 2, like most Unix tools. */
export class UsageError extends CliError {
  override name = 'UsageError';

  constructor(message: string, options: { command?: string; cause?: unknown } = {}) {
    super(message, 2, options);
  }
}
