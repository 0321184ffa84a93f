import type { z } from 'zod';

/** Most issues listed in one message; the rest are counted, so the line stays readable. */
const MAX_LISTED_ISSUES = 8;

/** `['stages', 2, 'renoise']` -> `stages[2].renoise`; the root is `(root)`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * All issues of a failed parse on one line: `a.b: message; c[0]: message`.
 * Callers print it as a single CLI line or log field, so newlines are flattened.
 */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const listed = issues
    .slice(0, MAX_LISTED_ISSUES)
    .map((issue) => `${formatIssuePath(issue.path)}: ${issue.message.replace(/\s+/g, ' ')}`);
  const hidden = issues.length - listed.length;
  if (hidden > 0) listed.push(`and ${hidden} more`);
  return listed.join('; ');
}
