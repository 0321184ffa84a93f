import { describe, expect, it } from 'vitest';
import { parseKeysArgs } from '../src/commands/keys.ts';
import { UsageError } from '../src/errors.ts';

// `pixelflow keys` flags, parsed in-process; test/service/cli-keys.test.ts runs the command for real.

function refusal(args: string[]): string {
  try {
    parseKeysArgs(args);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`${args.join(' ')} was accepted`);
}

describe('pixelflow keys arguments', () => {
  it('takes a rate as N, N/min or N/m, and limits as whole numbers', () => {
    expect(parseKeysArgs(['create', '--name', 'a', '--rate', '120/min', '--max-active', '4', '--admin'])).toMatchObject({ action: 'create', name: 'a', ratePerMinute: 120, maxActive: 4, admin: true });
    expect(parseKeysArgs(['create', '--name', 'a', '--rate', '60'])).toMatchObject({ ratePerMinute: 60, maxActive: null, admin: false });
    expect(parseKeysArgs(['create', '--name', 'a', '--rate', '5/m'])).toMatchObject({ ratePerMinute: 5 });
    expect(parseKeysArgs(['list', '--json'])).toMatchObject({ action: 'list', json: true });
    expect(parseKeysArgs(['revoke', 'app.v2'])).toMatchObject({ action: 'revoke', name: 'app.v2' });
  });

  it('refuses bad input with the rule it breaks', () => {
    const rate = (text: string) => `--rate must be requests a minute from 1 to 1000000, such as 120/min, not '${text}'`;
    for (const text of ['0/min', '5/h', 'fast', '1.5', '1000001']) expect(refusal(['create', '--name', 'a', '--rate', text])).toBe(rate(text));
    for (const text of ['0', '2.5', 'x']) expect(refusal(['create', '--name', 'a', '--max-active', text])).toBe(`--max-active must be a whole number of jobs from 1 to 1000000, not '${text}'`);
    expect(refusal(['create', '--name', 'a b'])).toBe("--name must be 1 to 64 letters, digits, _ . or -, starting with a letter or digit, not 'a b'");
    expect(refusal(['create', '--name', 'x'.repeat(65)])).toMatch(/^--name must be 1 to 64/);
    expect(refusal(['create'])).toBe('create needs --name NAME, e.g. pixelflow keys create --name mobile-app');
    expect(refusal(['create', '--name', 'a', 'extra'])).toBe("unexpected argument 'extra' (create takes --name NAME)");
    expect(refusal(['revoke'])).toBe('revoke needs the name of a key, e.g. pixelflow keys revoke mobile-app (pixelflow keys list shows them)');
    expect(refusal(['revoke', 'a', 'b'])).toBe("unexpected argument 'b'");
    expect(refusal(['list', '--admin'])).toBe('--name, --rate, --max-active and --admin belong to create, not list');
    expect(refusal(['lst'])).toBe("unknown action 'lst' (did you mean list?) (actions: create, list, revoke)");
    expect(refusal([])).toBe('which action? one of create, list, revoke (see pixelflow keys --help)');
  });
});
