import type { Principal } from './principal.ts';

// Who may see and cancel a job. With AUTH=off (no principal) there is one tenant and every job is
// its own; with AUTH=on a key sees the jobs it created, and an admin key every job. A job another
// key owns is answered exactly as one that does not exist (404), so ids cannot be probed.

export function mayAccessJob(principal: Principal | null, owner: string): boolean {
  return principal === null || principal.admin || principal.keyName === owner;
}
