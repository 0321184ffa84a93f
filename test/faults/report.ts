// What each check sent, what came back and whether that is what the service promises, printed as
// one Markdown table (for the README's "What we test against") with each check's verdicts under it.

/** Counts of outcomes in the order they were first seen. */
export class Tally {
  private readonly counts = new Map<string, number>();

  add(outcome: string, n = 1): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + n);
  }

  get(outcome: string): number {
    return this.counts.get(outcome) ?? 0;
  }

  total(): number {
    let sum = 0;
    for (const n of this.counts.values()) sum += n;
    return sum;
  }

  /** "1,890 4xx problem+json, 214 2xx": outcomes by count, largest first. */
  describe(): string {
    const entries = [...this.counts].sort((a, b) => b[1] - a[1]);
    return entries.length === 0 ? 'nothing' : entries.map(([outcome, n]) => `${count(n)} ${outcome}`).join(', ');
  }
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** "1 job", "3 jobs". */
export function plural(n: number, noun: string): string {
  return `${count(n)} ${noun}${n === 1 ? '' : 's'}`;
}

export interface Verdict {
  ok: boolean;
  /** What was expected and what was seen, e.g. "0 5xx (saw 3)". */
  text: string;
}

export interface CheckReport {
  name: string;
  /** What the check sent: requests, jobs, sockets, kills. */
  sent: string;
  /** What came back, as counts. */
  cameBack: string;
  verdicts: Verdict[];
  /** Lines printed under the table: measurements behind the verdicts, examples of what went wrong. */
  notes: string[];
  seconds: number;
}

/** Expects `seen` to be `want`; the verdict says both. */
export function expectEqual(what: string, seen: number, want: number): Verdict {
  return { ok: seen === want, text: seen === want ? `${what}: ${count(seen)}` : `${what}: ${count(seen)}, expected ${count(want)}` };
}

export function expectAtMost(what: string, seen: number, limit: number): Verdict {
  return { ok: seen <= limit, text: `${what}: ${count(seen)} (at most ${count(limit)})` };
}

export function expectAtLeast(what: string, seen: number, floor: number): Verdict {
  return { ok: seen >= floor, text: `${what}: ${count(seen)} (at least ${count(floor)})` };
}

export function passed(report: CheckReport): boolean {
  return report.verdicts.length > 0 && report.verdicts.every((v) => v.ok);
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** The table, then each check's verdicts and examples. */
export function formatReports(reports: readonly CheckReport[], header: string): string {
  const lines = [header, '', '| Check | Sent | Came back | Result |', '| --- | --- | --- | --- |'];
  for (const r of reports) {
    const failed = r.verdicts.filter((v) => !v.ok);
    const result = passed(r) ? `pass (${r.seconds.toFixed(0)} s)` : `**FAIL** (${r.seconds.toFixed(0)} s): ${failed.map((v) => v.text).join('; ') || 'no verdict'}`;
    lines.push(`| ${cell(r.name)} | ${cell(r.sent)} | ${cell(r.cameBack)} | ${cell(result)} |`);
  }
  for (const r of reports) {
    lines.push('', `${passed(r) ? 'pass' : 'FAIL'} ${r.name}`);
    for (const v of r.verdicts) lines.push(`  ${v.ok ? 'ok  ' : 'FAIL'} ${v.text}`);
    for (const note of r.notes) lines.push(`       ${note}`);
  }
  return lines.join('\n');
}
