-- Named queries, looked up by name through gateway.db.queries. Each block
-- starts with "-- name: <name>" and runs to the next such line.

-- name: insert_message
-- One round trip, one transaction: the message, one delivery per recipient
-- and the audit event. ON CONFLICT makes a repeated (sender, message_id)
-- insert nothing, and the caller then returns the original receipt.
-- A recipient whose destination is backing off gets its first attempt at the
-- end of that backoff instead of now.
WITH m AS (
    INSERT INTO messages (sender, message_id, message_type, conversation_id, ref_to_message_id,
                          letter_number, letter_date, subject, speed, secrecy, channel,
                          received_sha256, received, forwarded, evidence, receipt, accepted_at)
    VALUES ($1, $2, $3::message_type, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
    ON CONFLICT (sender, message_id) DO NOTHING
    RETURNING pk
), d AS (
    INSERT INTO deliveries (id, message_pk, recipient, route, status, next_attempt_at, created_at, expires_at)
    SELECT r.id, m.pk, r.recipient, r.route, r.status::delivery_status,
           greatest($17, coalesce(dest.backoff_until, $17)), $17, $18
    FROM m
    CROSS JOIN unnest($19::uuid[], $20::text[], $21::text[], $22::text[]) AS r (id, recipient, route, status)
    LEFT JOIN destinations dest ON dest.agency = r.recipient
    RETURNING 1
), a AS (
    INSERT INTO audit_events (at, actor, kind, message_pk, details)
    SELECT $17, $1, 'message.accepted', m.pk, $23::jsonb FROM m
    RETURNING 1
)
SELECT m.pk, (SELECT count(*) FROM d) AS deliveries FROM m;

-- name: get_message
SELECT pk, sender, message_id, message_type::text AS message_type, conversation_id, ref_to_message_id,
       letter_number, letter_date, subject, received_sha256, receipt, accepted_at, channel
FROM messages WHERE sender = $1 AND message_id = $2;

-- name: get_message_by_pk
SELECT pk, sender, message_id, message_type::text AS message_type, conversation_id, ref_to_message_id,
       letter_number, letter_date, subject, received_sha256, receipt, accepted_at, channel, forwarded
FROM messages WHERE pk = $1;

-- name: message_deliveries
SELECT d.id, d.recipient, d.route, d.status::text AS status, d.attempts, d.next_attempt_at,
       d.last_error, d.created_at, d.delivered_at, d.expires_at
FROM deliveries d WHERE d.message_pk = $1 ORDER BY d.recipient;

-- name: claim_due
-- Claim up to $2 due deliveries for this worker ($4) with a lease of $3.
-- SKIP LOCKED lets any number of gateway processes claim side by side; an
-- expired lease ('sending' with next_attempt_at in the past) is simply due.
-- Destinations still backing off are left alone: no network work for them.
WITH due AS (
    SELECT d.id FROM deliveries d
    WHERE d.status IN ('queued', 'sending', 'retry_wait') AND d.next_attempt_at <= $1
      AND NOT EXISTS (SELECT 1 FROM destinations x WHERE x.agency = d.recipient AND x.backoff_until > $1)
    ORDER BY d.next_attempt_at
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d
SET status = 'sending', next_attempt_at = $1 + $3::interval, leased_by = $4, attempts = d.attempts + 1
FROM due, messages m
WHERE d.id = due.id AND m.pk = d.message_pk
RETURNING d.id, d.message_pk, d.recipient, d.route, d.attempts, d.created_at, d.expires_at,
          m.message_id, m.sender, m.message_type::text AS message_type, m.forwarded,
          coalesce((SELECT x.consecutive_failures FROM destinations x WHERE x.agency = d.recipient), 0)
              AS destination_failures;

-- name: release_claim
-- Give a claimed delivery back without having tried it (its destination went
-- into backoff while it waited in the batch): the attempt does not count.
UPDATE deliveries SET status = 'retry_wait', next_attempt_at = $3, attempts = attempts - 1, leased_by = NULL
WHERE id = $1 AND status = 'sending' AND leased_by = $2;

-- name: mark_delivered
UPDATE deliveries SET status = 'delivered', delivered_at = $3, leased_by = NULL, last_error = NULL
WHERE id = $1 AND status IN ('sending', 'inbox', 'queued', 'retry_wait') AND (leased_by = $2 OR $2 IS NULL)
RETURNING message_pk, recipient;

-- name: mark_retry
UPDATE deliveries SET status = 'retry_wait', next_attempt_at = $3, last_error = $4, leased_by = NULL
WHERE id = $1 AND status = 'sending' AND leased_by = $2;

-- name: mark_dead
UPDATE deliveries SET status = 'dead', last_error = $3, leased_by = NULL
WHERE id = $1 AND status = 'sending' AND leased_by = $2;

-- name: record_attempt
INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, error)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (delivery_id, attempt) DO UPDATE
SET finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome, error = EXCLUDED.error;

-- name: delivery_attempts
SELECT attempt, started_at, finished_at, outcome, error FROM delivery_attempts
WHERE delivery_id = $1 ORDER BY attempt;

-- name: destination_failed
-- Count one more consecutive failure; the caller decides on a backoff.
INSERT INTO destinations (agency, consecutive_failures, failing_since, last_error, updated_at)
VALUES ($1, 1, $2, $3, $2)
ON CONFLICT (agency) DO UPDATE
SET consecutive_failures = destinations.consecutive_failures + 1,
    failing_since = coalesce(destinations.failing_since, EXCLUDED.failing_since),
    last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at
RETURNING consecutive_failures;

-- name: destination_backoff
UPDATE destinations SET backoff_until = greatest(coalesce(backoff_until, $2), $2)
WHERE agency = $1
RETURNING backoff_until;

-- name: destination_ok
UPDATE destinations SET consecutive_failures = 0, failing_since = NULL, backoff_until = NULL,
                        last_error = NULL, updated_at = $2
WHERE agency = $1 AND (consecutive_failures > 0 OR backoff_until IS NOT NULL);

-- name: defer_destination
-- While a destination backs off, push its waiting deliveries past the backoff
-- so the claim query never wades through them.
UPDATE deliveries SET next_attempt_at = $2
WHERE recipient = $1 AND status IN ('queued', 'retry_wait') AND next_attempt_at < $2;

-- name: destinations
SELECT x.agency, x.consecutive_failures, x.failing_since, x.backoff_until, x.last_error, x.updated_at
FROM destinations x ORDER BY x.agency;

-- name: queue_depth
SELECT recipient, status::text AS status, count(*) AS n FROM deliveries
WHERE status IN ('queued', 'sending', 'retry_wait', 'inbox', 'dead')
GROUP BY recipient, status ORDER BY recipient, status;

-- name: inbox
SELECT d.id, d.created_at, m.message_id, m.sender, m.message_type::text AS message_type, m.forwarded
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.recipient = $1 AND d.status = 'inbox'
ORDER BY d.created_at, d.id
LIMIT $2;

-- name: inbox_item
SELECT d.id, d.created_at, d.status::text AS status, m.message_id, m.sender,
       m.message_type::text AS message_type, m.forwarded
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.recipient = $1 AND d.id = $2;

-- name: delivery_for_ack
SELECT d.id, d.status::text AS status, d.recipient, d.message_pk, m.message_id, m.sender,
       m.message_type::text AS message_type, m.conversation_id, m.forwarded
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.id = $1
FOR UPDATE OF d;

-- name: insert_receipt
INSERT INTO receipts (message_pk, delivery_id, kind, receipt, ack, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING
RETURNING pk;

-- name: message_receipts
SELECT delivery_id, kind, receipt, ack, created_at FROM receipts WHERE message_pk = $1 ORDER BY pk;

-- name: insert_audit
INSERT INTO audit_events (at, actor, kind, message_pk, delivery_id, details)
VALUES ($1, $2, $3, $4, $5, $6::jsonb);

-- name: list_deliveries
SELECT d.id, d.recipient, d.status::text AS status, d.attempts, d.next_attempt_at, d.last_error,
       d.created_at, m.message_id, m.sender
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE ($1::text IS NULL OR d.status = $1::delivery_status)
  AND ($2::text IS NULL OR d.recipient = $2)
ORDER BY d.created_at DESC, d.id
LIMIT $3;

-- name: requeue
-- Operator action: a dead (or waiting) delivery becomes due now, with a fresh
-- attempt budget and time to live.
UPDATE deliveries SET status = CASE WHEN route = 'pull' THEN 'inbox'::delivery_status ELSE 'queued'::delivery_status END,
                      next_attempt_at = $2, attempts = 0, expires_at = $3, leased_by = NULL
WHERE id = $1 AND status IN ('dead', 'retry_wait')
RETURNING message_pk, recipient;

-- name: ping
SELECT 1;
