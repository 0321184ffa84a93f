// What the monitoring tests read in PromQL (the alert rules, the dashboard's queries) and in the
// Prometheus text format (live scrapes): which metrics a query selects, with which label matchers,
// and which labels it groups by; which metrics a scrape declares, with which labels. Not a whole
// PromQL parser: the queries' syntax is promtool's to check (test/deploy-*.test.ts); this finds
// the names in a query promtool accepted, whatever its nesting, strings, ranges and modifiers.

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface Selector {
  /** The metric's name, from before the braces or from a `__name__="..."` matcher; null if neither. */
  name: string | null;
  matchers: Matcher[];
}

export interface QueryNames {
  selectors: Selector[];
  /** Labels named by by, without, on, ignoring, group_left and group_right. */
  groupingLabels: string[];
}

type Token = { kind: 'ident' | 'string' | 'number' | 'punct'; text: string };

/** Aggregation operators: names that may be followed by `by (...)` before their parentheses. */
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);
/** Keywords followed by a parenthesised list of label names. */
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Binary operators and modifiers spelled as words. */
const WORDS = new Set(['and', 'or', 'unless', 'atan2', 'bool', 'offset', 'inf', 'nan']);

const DURATION = /^(?:\d+(?:ms|s|m|h|d|w|y))+/;
const NUMBER = /^(?:0x[0-9a-f]+|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)/i;
const IDENT = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
/** Grafana's variables ($__rate_interval, ${name}, $name): in a range or a value, never a name. */
const VARIABLE = /^\$(?:\{[^}]*\}|\w+)/;
const PUNCT = ['!=', '=~', '!~', '==', '<=', '>=', '{', '}', '(', ')', '[', ']', ',', '=', '<', '>', '+', '-', '*', '/', '%', '^', '@', ':'];

function tokenize(query: string): Token[] {
  const tokens: Token[] = [];
  let rest = query;
  while (rest.length > 0) {
    const space = /^\s+/.exec(rest);
    if (space) {
      rest = rest.slice(space[0].length);
      continue;
    }
    if (rest.startsWith('#')) {
      const end = rest.indexOf('\n');
      rest = end === -1 ? '' : rest.slice(end + 1);
      continue;
    }
    const quote = rest[0];
    if (quote === '"' || quote === "'" || quote === '`') {
      let i = 1;
      let text = '';
      for (; i < rest.length && rest[i] !== quote; i += 1) {
        if (rest[i] === '\\' && quote !== '`') i += 1;
        text += rest[i] ?? '';
      }
      if (i >= rest.length) throw new Error(`unterminated string in ${JSON.stringify(query)}`);
      tokens.push({ kind: 'string', text });
      rest = rest.slice(i + 1);
      continue;
    }
    const match = DURATION.exec(rest) ?? NUMBER.exec(rest) ?? VARIABLE.exec(rest);
    if (match) {
      tokens.push({ kind: 'number', text: match[0] });
      rest = rest.slice(match[0].length);
      continue;
    }
    const ident = IDENT.exec(rest);
    if (ident) {
      tokens.push({ kind: 'ident', text: ident[0] });
      rest = rest.slice(ident[0].length);
      continue;
    }
    const punct = PUNCT.find((p) => rest.startsWith(p));
    if (!punct) throw new Error(`unexpected ${JSON.stringify(rest[0])} in ${JSON.stringify(query)}`);
    tokens.push({ kind: 'punct', text: punct });
    rest = rest.slice(punct.length);
  }
  return tokens;
}

/** The metrics `query` selects (with their matchers) and the labels it groups or matches on. */
export function namesInQuery(query: string): QueryNames {
  const tokens = tokenize(query);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const at = (i: number): Token | undefined => tokens[i];

  /** Reads `{ label op "value", ... }` from the `{` at `i`; returns the matchers and the index after `}`. */
  const readMatchers = (i: number): [Matcher[], number] => {
    const matchers: Matcher[] = [];
    let j = i + 1;
    while (at(j)?.text !== '}') {
      const label = at(j);
      const op = at(j + 1);
      const value = at(j + 2);
      if (label?.kind !== 'ident' || !op || !['=', '!=', '=~', '!~'].includes(op.text) || value?.kind !== 'string') {
        throw new Error(`unreadable label matcher at token ${j} of ${JSON.stringify(query)}`);
      }
      matchers.push({ label: label.text, op: op.text as Matcher['op'], value: value.text });
      j += 3;
      if (at(j)?.text === ',') j += 1;
    }
    return [matchers, j + 1];
  };

  for (let i = 0; i < tokens.length; ) {
    const token = tokens[i] as Token;
    if (token.text === '[' && token.kind === 'punct') {
      // A range or a subquery's range and resolution: durations and variables only.
      while (i < tokens.length && at(i)?.text !== ']') i += 1;
      i += 1;
      continue;
    }
    if (token.text === '{' && token.kind === 'punct') {
      // A selector without a name before its braces.
      const [matchers, next] = readMatchers(i);
      selectors.push({ name: matchers.find((m) => m.label === '__name__' && m.op === '=')?.value ?? null, matchers });
      i = next;
      continue;
    }
    if (token.kind !== 'ident') {
      i += 1;
      continue;
    }
    const word = token.text.toLowerCase();
    if (GROUPING.has(word)) {
      i += 1;
      if (at(i)?.text === '(') {
        for (i += 1; at(i) && at(i)?.text !== ')'; i += 1) {
          const label = at(i);
          if (label?.kind === 'ident') groupingLabels.push(label.text);
        }
        i += 1;
      }
      continue;
    }
    if (WORDS.has(word) || AGGREGATIONS.has(word) || at(i + 1)?.text === '(') {
      // An operator, a modifier, an aggregation or a function (start() and end() of @ too).
      i += 1;
      continue;
    }
    if (at(i + 1)?.text === '{') {
      const [matchers, next] = readMatchers(i + 1);
      selectors.push({ name: token.text, matchers });
      i = next;
      continue;
    }
    selectors.push({ name: token.text, matchers: [] });
    i += 1;
  }
  return { selectors, groupingLabels };
}

export interface ScrapedMetric {
  /** From its # TYPE line: counter, gauge, histogram, summary, untyped. */
  type: string;
  /** Each sample's labels, by the name it is exposed under (histograms: name_bucket, _sum, _count). */
  samples: { name: string; labels: Record<string, string> }[];
}

/** The metrics a scrape in the Prometheus text format declares (# TYPE) or shows samples of. */
export function parseScrape(text: string): Map<string, ScrapedMetric> {
  const metrics = new Map<string, ScrapedMetric>();
  const families: string[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      metrics.set(type[1] as string, { type: type[2] as string, samples: [] });
      families.push(type[1] as string);
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const name = sample[1] as string;
    const labels: Record<string, string> = {};
    for (const pair of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    // A sample belongs to the family it is listed under: the last TYPE line above it.
    const family = metrics.get(families.at(-1) ?? '') ?? metrics.get(name);
    if (!family) throw new Error(`sample ${name} before any # TYPE line`);
    family.samples.push({ name, labels });
  }
  return metrics;
}

/**
 * The metric family a query's name refers to on a scrape: the name itself, or a histogram's or
 * summary's base name for its _bucket, _sum and _count series. Undefined when the scrape has no such series.
 */
export function familyOf(name: string, scrape: Map<string, ScrapedMetric>): ScrapedMetric | undefined {
  const direct = scrape.get(name);
  if (direct && direct.type !== 'histogram' && direct.type !== 'summary') return direct;
  const suffix = /_(bucket|sum|count)$/.exec(name);
  if (!suffix) return undefined; // a histogram's bare name selects nothing in PromQL
  const base = scrape.get(name.slice(0, suffix.index));
  if (!base) return undefined;
  if (base.type === 'histogram' || (base.type === 'summary' && suffix[1] !== 'bucket')) return base;
  return undefined;
}
