import type { FastifyReply, FastifyRequest } from 'fastify';
import { claimOrWait, idempotencyKeyOf, requestFingerprint, type IdempotencyStore, type StoredAnswer } from '@pixelflow/queue';
import { scopeOf } from './auth/principal.ts';
import { problem, sendProblem } from './problems.ts';

// POST /jobs with an Idempotency-Key: the first request with a key (in its API key's scope) creates
// the job and its answer is stored; a repeat with the same body gets that answer again, a repeat
// with another body a 422. Only a created job is remembered: a refusal releases the key.

/** How long a request waits for another with its key that is creating the job, before it answers 409. */
const WAIT_FOR_CREATOR_MS = 5000;
/** Retry-After of that 409: a creation takes milliseconds, so the answer is there on the retry. */
const IN_PROGRESS_RETRY_AFTER_SECONDS = 1;

/** The header that marks a replayed answer (the name Stripe and others use; the draft names none). */
export const REPLAYED_HEADER = 'idempotent-replayed';

/** What creating the job did: a reply already sent, and whether it was a created job (worth remembering). */
export interface SubmissionReply {
  reply: FastifyReply;
  /** The answer to store, when a job was created; null for a refusal. */
  answer: StoredAnswer | null;
}

function replay(reply: FastifyReply, answer: StoredAnswer): FastifyReply {
  return reply.code(answer.status).header('location', answer.location).header(REPLAYED_HEADER, 'true').type('application/json; charset=utf-8').send(answer.body);
}

/** Runs `submit` at most once per (scope, key, body) within the key's lifetime; see the module comment. */
export async function submitIdempotently(store: IdempotencyStore, request: FastifyRequest, reply: FastifyReply, header: string, submit: () => Promise<SubmissionReply>): Promise<FastifyReply> {
  const scope = scopeOf(request.principal);
  const key = idempotencyKeyOf(header);
  const claim = await claimOrWait(store, scope, key, requestFingerprint(request.body), { waitMs: WAIT_FOR_CREATOR_MS });
  switch (claim.outcome) {
    case 'replay':
      return replay(reply, claim.answer);
    case 'mismatch':
      return sendProblem(reply, problem('idempotency-key-reused', `Idempotency-Key ${JSON.stringify(key)} was used with a different request body; use a new key for a new request`, { instance: '/jobs' }));
    case 'in-progress':
      return sendProblem(reply, problem('idempotency-in-progress', `a request with Idempotency-Key ${JSON.stringify(key)} is still creating its job; retry to get its answer`, { instance: '/jobs' }), {
        'retry-after': String(IN_PROGRESS_RETRY_AFTER_SECONDS),
      });
    case 'claimed':
      break;
  }
  let submitted: SubmissionReply;
  try {
    submitted = await submit();
  } catch (error) {
    await store.release(scope, key, claim.token).catch(() => undefined);
    throw error;
  }
  if (submitted.answer === null) await store.release(scope, key, claim.token);
  else if (!(await store.complete(scope, key, claim.token, submitted.answer))) {
    request.log.warn({ idempotency_key: key }, 'idempotency claim lapsed before the job was created; the key is not remembered');
  }
  return submitted.reply;
}
