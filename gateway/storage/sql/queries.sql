-- Named queries, looked up by name through gateway.db.queries. Each block
-- starts with "-- name: <name>" and runs to the next such line.

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
          m.message_id, m.sender, m.message_type::text AS message_type, m.forwarded, m.parts,
          coalesce((SELECT x.consecutive_failures FROM destinations x WHERE x.agency = d.recipient), 0)
              AS destination_failures;

-- name: release_claim
-- Give a claimed delivery back without having tried it (its destination went
-- into backoff while it waited in the batch): the attempt does not count.
-- A claim is (leased_by, attempts): re-claiming an expired lease bumps attempts,
-- so a stale holder never releases the claim that replaced it, even when the
-- new holder has the same worker name (this same process re-claiming it).
UPDATE deliveries SET status = 'retry_wait', next_attempt_at = $3, attempts = attempts - 1, leased_by = NULL
WHERE id = $1 AND status = 'sending' AND leased_by = $2 AND attempts = $4;

-- name: mark_retry
UPDATE deliveries SET status = 'retry_wait', next_attempt_at = $3, last_error = $4, leased_by = NULL
WHERE id = $1 AND status = 'sending' AND leased_by = $2;

-- name: mark_dead
UPDATE deliveries SET status = 'dead', last_error = $3, leased_by = NULL
WHERE id = $1 AND status = 'sending' AND leased_by = $2;

-- name: mark_delivered_for_receipt
-- A delivery becomes delivered (from a deliverable state; the dispatcher's only while it holds the
-- lease), answering what the delivery receipt needs in the same round trip: the message's
-- identity and the SHA-256 of the forwarded bytes (computed here, so a large envelope does not
-- travel back to the gateway only to be hashed). The UPDATE locks the delivery row.
WITH d AS (
    UPDATE deliveries SET status = 'delivered', delivered_at = $3, leased_by = NULL, last_error = NULL
    WHERE id = $1 AND status IN ('sending', 'inbox', 'queued', 'retry_wait') AND (leased_by = $2 OR $2 IS NULL)
    RETURNING id, message_pk, recipient
)
SELECT d.id, d.recipient, d.message_pk, m.message_id, m.sender, m.message_type::text AS message_type,
       m.conversation_id, sha256(m.forwarded) AS forwarded_sha256
FROM d JOIN messages m ON m.pk = d.message_pk;

-- name: delivery_completed
-- The rest of a delivery's completion in one round trip: its audit event, the receipt row,
-- the destination's failure count reset and (from the dispatcher; $9 NULL for a pull
-- acknowledgement) the attempt that delivered it.
WITH a AS (
    INSERT INTO audit_events (at, actor, kind, message_pk, delivery_id, details)
    VALUES ($1, $2, 'delivery.delivered', $3, $4, $5::jsonb)
), r AS (
    INSERT INTO receipts (message_pk, delivery_id, kind, receipt, ack, created_at)
    VALUES ($3, $4, 'delivery', $6, $7, $1)
    ON CONFLICT (delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING
), x AS (
    UPDATE destinations SET consecutive_failures = 0, failing_since = NULL, backoff_until = NULL,
                            last_error = NULL, updated_at = $1
    WHERE agency = $8 AND (consecutive_failures > 0 OR backoff_until IS NOT NULL)
), t AS (
    INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, error)
    SELECT $4, $9, $10, $1, 'delivered', NULL WHERE $9::integer IS NOT NULL
    ON CONFLICT (delivery_id, attempt) DO UPDATE
    SET finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome, error = EXCLUDED.error
)
SELECT 1;

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
-- $3 false leaves delivery receipts out (in SQL, before the LIMIT): the e-CMS
-- facade has no form for them, and skipping them after the LIMIT let enough
-- receipts hide every letter behind them.
SELECT d.id, d.created_at, m.message_id, m.sender, m.message_type::text AS message_type, m.forwarded,
       m.parts, m.pk AS message_pk
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.recipient = $1 AND d.status = 'inbox' AND ($3::boolean OR m.message_type <> 'receipt')
ORDER BY d.created_at, d.id
LIMIT $2;

-- name: inbox_item
SELECT d.id, d.created_at, d.status::text AS status, m.message_id, m.sender,
       m.message_type::text AS message_type, m.forwarded, m.parts, m.pk AS message_pk
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.recipient = $1 AND d.id = $2;

-- name: delivery_for_ack
SELECT d.id, d.status::text AS status, d.recipient, d.message_pk, m.message_id, m.sender,
       m.message_type::text AS message_type, m.conversation_id, m.forwarded
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.id = $1
FOR UPDATE OF d;

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

-- name: insert_messages
-- Group commit: many messages (with their deliveries and audit events) in one
-- statement and one transaction (a lone message is a batch of one). Parallel
-- arrays, one element per message ($1..$18, $25..$28) and one per delivery
-- ($19..$24, each naming its message by index). A recipient whose destination
-- is backing off gets its first attempt at the end of that backoff.
-- Rows whose (sender, message_id) exists already are skipped and come back
-- without a pk; the caller answers those with the original receipt. A letter
-- with a resend guard ($28, the e-CMS rule) already sent as another letter to
-- one of its recipients is skipped too and comes back with that recipient in
-- sent_otherwise (checked here, not in a query of its own: that was a round
-- trip and a transaction per e-CMS letter, 0.6 ms of PostgreSQL CPU each).
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::bytea[],
                         $14::bytea[], $15::bytea[], $16::bytea[], $17::timestamptz[], $18::jsonb[],
                         $25::text[], $26::text[], $27::integer[], $28::text[])
        WITH ORDINALITY AS i (sender, message_id, message_type, conversation_id, ref_to_message_id,
                              letter_number, letter_date, subject, speed, secrecy, channel, received_sha256,
                              received, forwarded, evidence, receipt, accepted_at, audit, notifier_kind,
                              registry_number, parts, resend_guard, ord)
), r AS (
    SELECT * FROM unnest($19::bigint[], $20::uuid[], $21::text[], $22::text[], $23::text[], $24::timestamptz[])
        AS r (ord, id, recipient, route, status, expires_at)
), blocked AS (
    -- The e-CMS resend rule: the first recipient whose latest live letter from this sender with
    -- this number and date is another letter than the guard (neither it nor a resend, guard.r<n>).
    -- The letters are found by number first (OFFSET 0 keeps that subquery whole) and min() takes
    -- the first recipient: with ORDER BY ... LIMIT 1 the planner walked the recipient's deliveries
    -- newest first to stop early, through every letter that recipient ever had when none matched.
    SELECT i.ord, other.recipient FROM input i
    CROSS JOIN LATERAL (
        SELECT min(latest.recipient) AS recipient FROM (
            SELECT DISTINCT ON (d.recipient) d.recipient, pm.message_id
            FROM (SELECT pk, message_id, accepted_at FROM messages
                  WHERE message_type = 'letter' AND letter_number = i.letter_number
                    AND letter_date = i.letter_date AND sender = i.sender OFFSET 0) pm
            JOIN deliveries d ON d.message_pk = pm.pk
            WHERE d.status <> 'withdrawn' AND d.recipient IN (SELECT r.recipient FROM r WHERE r.ord = i.ord)
            ORDER BY d.recipient, pm.accepted_at DESC, pm.pk DESC
        ) latest
        WHERE split_part(latest.message_id, '.r', 1) <> i.resend_guard
    ) other
    WHERE i.resend_guard IS NOT NULL AND other.recipient IS NOT NULL
), m AS (
    INSERT INTO messages (sender, message_id, message_type, conversation_id, ref_to_message_id,
                          letter_number, letter_date, subject, speed, secrecy, channel,
                          received_sha256, received, forwarded, evidence, receipt, accepted_at, notifier_kind,
                          registry_number, parts)
    SELECT sender, message_id, message_type::message_type, conversation_id, ref_to_message_id, letter_number,
           letter_date, subject, speed, secrecy, channel, received_sha256, received, forwarded, evidence, receipt,
           accepted_at, notifier_kind, registry_number, parts
    FROM input WHERE ord NOT IN (SELECT ord FROM blocked) ORDER BY ord
    ON CONFLICT (sender, message_id) DO NOTHING
    RETURNING pk, sender, message_id
), mi AS (
    SELECT m.pk, i.ord, i.accepted_at, i.audit, i.sender FROM m
    JOIN input i ON i.sender = m.sender AND i.message_id = m.message_id
), d AS (
    INSERT INTO deliveries (id, message_pk, recipient, route, status, next_attempt_at, created_at, expires_at)
    SELECT r.id, mi.pk, r.recipient, r.route, r.status::delivery_status,
           greatest(mi.accepted_at, coalesce(dest.backoff_until, mi.accepted_at)), mi.accepted_at, r.expires_at
    FROM r JOIN mi ON mi.ord = r.ord
    LEFT JOIN destinations dest ON dest.agency = r.recipient
), a AS (
    -- (data-modifying CTEs always run to completion, read or not)
    INSERT INTO audit_events (at, actor, kind, message_pk, details)
    SELECT mi.accepted_at, mi.sender, 'message.accepted', mi.pk, mi.audit FROM mi ORDER BY mi.ord
)
SELECT ord, pk, NULL AS sent_otherwise FROM mi
UNION ALL
SELECT ord, NULL, recipient FROM blocked;

-- name: find_letter
-- The latest letter with this number and date (optionally from this sender,
-- and with a delivery to this recipient that was not withdrawn): what a
-- notifier answers when it names the letter the e-CMS way.
SELECT m.message_id, m.sender,
       array_agg(d.recipient ORDER BY d.recipient) FILTER (WHERE d.status <> 'withdrawn') AS recipients
FROM messages m JOIN deliveries d ON d.message_pk = m.pk
WHERE m.message_type = 'letter' AND m.letter_number = $1 AND m.letter_date = $2
  AND ($3::text IS NULL OR m.sender = $3)
GROUP BY m.pk
HAVING ($4::text IS NULL OR bool_or(d.recipient = $4 AND d.status <> 'withdrawn'))
   AND bool_or(d.status <> 'withdrawn')
ORDER BY m.accepted_at DESC, m.pk DESC
LIMIT 1;

-- name: withdraw
-- The sender withdraws its letter from one recipient. Allowed while the letter
-- is not delivered (queued, in flight, in the inbox, dead), or when that
-- recipient's latest answer is a rejection or an invalid notice; a delivered
-- letter the registry received or accepted stays. Every live target comes back
-- with ``withdrawable``; unless all are, nothing changes (``withdrawn`` false)
-- and the caller refuses with message.not_withdrawable. A delivery in flight
-- finishes its attempt but cannot be recorded as delivered any more
-- (mark_delivered_for_receipt requires a deliverable state).
WITH target AS (
    SELECT d.id, d.message_pk, m.message_id, d.recipient, d.status::text AS status, ans.notifier_kind AS answer,
           (d.status <> 'delivered' OR coalesce(ans.notifier_kind IN ('rejected', 'invalid'), false)) AS withdrawable
    FROM deliveries d JOIN messages m ON m.pk = d.message_pk
    LEFT JOIN LATERAL (
        -- the recipient's latest answer to this letter, matched as in business_answers
        SELECT n.notifier_kind FROM messages n
        JOIN deliveries nd ON nd.message_pk = n.pk AND nd.recipient = m.sender
        WHERE n.message_type = 'notifier' AND n.sender = d.recipient
          AND (n.ref_to_message_id = m.message_id
               OR (n.ref_to_message_id IS NULL AND n.letter_number = m.letter_number
                   AND n.letter_date = m.letter_date AND n.accepted_at >= m.accepted_at))
        ORDER BY n.accepted_at DESC, n.pk DESC
        LIMIT 1
    ) ans ON true
    WHERE m.sender = $1 AND m.message_type = 'letter'
      AND m.letter_number = $2 AND m.letter_date = $3 AND d.recipient = $4 AND d.status <> 'withdrawn'
    FOR UPDATE OF d
), done AS (
    UPDATE deliveries d SET status = 'withdrawn', leased_by = NULL
    FROM target t
    WHERE d.id = t.id AND NOT EXISTS (SELECT 1 FROM target x WHERE NOT x.withdrawable)
    RETURNING d.id
)
SELECT t.id, t.message_pk, t.message_id, t.recipient, t.status, t.answer, t.withdrawable,
       EXISTS (SELECT 1 FROM done WHERE done.id = t.id) AS withdrawn
FROM target t;

-- name: withdraw_by_id
-- As withdraw, by message id, from the named recipients ($3) or all of them.
WITH target AS (
    SELECT d.id, d.message_pk, m.message_id, d.recipient, d.status::text AS status, ans.notifier_kind AS answer,
           (d.status <> 'delivered' OR coalesce(ans.notifier_kind IN ('rejected', 'invalid'), false)) AS withdrawable
    FROM deliveries d JOIN messages m ON m.pk = d.message_pk
    LEFT JOIN LATERAL (
        SELECT n.notifier_kind FROM messages n
        JOIN deliveries nd ON nd.message_pk = n.pk AND nd.recipient = m.sender
        WHERE n.message_type = 'notifier' AND n.sender = d.recipient
          AND (n.ref_to_message_id = m.message_id
               OR (n.ref_to_message_id IS NULL AND n.letter_number = m.letter_number
                   AND n.letter_date = m.letter_date AND n.accepted_at >= m.accepted_at))
        ORDER BY n.accepted_at DESC, n.pk DESC
        LIMIT 1
    ) ans ON true
    WHERE m.sender = $1 AND m.message_id = $2
      AND ($3::text[] IS NULL OR d.recipient = ANY ($3::text[])) AND d.status <> 'withdrawn'
    FOR UPDATE OF d
), done AS (
    UPDATE deliveries d SET status = 'withdrawn', leased_by = NULL
    FROM target t
    WHERE d.id = t.id AND NOT EXISTS (SELECT 1 FROM target x WHERE NOT x.withdrawable)
    RETURNING d.id
)
SELECT t.id, t.message_pk, t.message_id, t.recipient, t.status, t.answer, t.withdrawable,
       EXISTS (SELECT 1 FROM done WHERE done.id = t.id) AS withdrawn
FROM target t;

-- name: delivery_history
-- What happened to each delivery of a message, in order (status history).
SELECT delivery_id, kind, at, actor FROM audit_events
WHERE message_pk = $1 AND delivery_id IS NOT NULL
ORDER BY seq;

-- name: later_sends
-- Letters the sender sent again under the same number and date after this one
-- (a resend after a withdrawal).
SELECT m.message_id, m.accepted_at FROM messages m
WHERE m.sender = $1 AND m.message_type = 'letter' AND m.letter_number = $2 AND m.letter_date = $3
  AND (m.accepted_at, m.pk) > ($4, $5)
ORDER BY m.accepted_at, m.pk;

-- name: outbound
SELECT m.message_id, coalesce(m.letter_number, '') AS letter_number, m.message_type::text AS message_type,
       array_agg(d.status::text) AS statuses
FROM messages m JOIN deliveries d ON d.message_pk = m.pk
WHERE m.sender = $1 AND m.message_type <> 'receipt'
GROUP BY m.pk
ORDER BY m.accepted_at DESC, m.pk DESC
LIMIT $2;

-- name: business_answers
-- Notifiers that answer this letter, newest first per answering agency:
-- linked by message id, or (a notifier naming no message id) the e-CMS way by
-- letter number + date + parties, after this letter ($6): a letter resent
-- under the same number and date does not inherit its withdrawn predecessor's
-- rejection.
SELECT DISTINCT ON (n.sender) n.sender, n.notifier_kind, n.registry_number, n.accepted_at, n.message_id
FROM messages n
JOIN deliveries nd ON nd.message_pk = n.pk AND nd.recipient = $2
WHERE n.message_type = 'notifier'
  AND (n.ref_to_message_id = $1
       OR (n.ref_to_message_id IS NULL AND n.letter_number = $3 AND n.letter_date = $4 AND n.accepted_at >= $6))
  AND n.sender = ANY ($5::text[])
ORDER BY n.sender, n.accepted_at DESC, n.pk DESC;

-- name: letter_for_notifier
-- The letter a notifier answers: by message id when the native notifier names
-- it, else the e-CMS way (number + date + the parties).
SELECT m.pk, m.message_id, m.received FROM messages m
WHERE m.message_type = 'letter' AND m.sender = $1
  AND (m.message_id = $2 OR ($2 IS NULL AND m.letter_number = $3 AND m.letter_date = $4))
  AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_pk = m.pk AND d.recipient = $5)
ORDER BY m.accepted_at DESC LIMIT 1;

-- name: upsert_stamp
INSERT INTO stamped_letters (letter_pk, recipient, registry_number, notifier_pk, pdf, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (letter_pk, recipient) DO UPDATE
SET registry_number = EXCLUDED.registry_number, notifier_pk = EXCLUDED.notifier_pk, pdf = EXCLUDED.pdf,
    created_at = EXCLUDED.created_at;

-- name: stamped_letter
SELECT s.pdf, s.registry_number, m.sender FROM stamped_letters s JOIN messages m ON m.pk = s.letter_pk
WHERE m.sender = $1 AND m.message_id = $2 AND s.recipient = $3;

-- name: outbound_depth
SELECT count(*) FROM deliveries WHERE status IN ('queued', 'sending', 'retry_wait');

-- name: last_directory_digest
SELECT details->>'sha256' FROM audit_events WHERE kind = 'directory.changed' ORDER BY seq DESC LIMIT 1;

-- name: insert_part
INSERT INTO message_parts (message_pk, content_id, content_type, size, sha256, chunks)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: insert_part_chunk
INSERT INTO message_part_chunks (message_pk, content_id, seq, data) VALUES ($1, $2, $3, $4);

-- name: message_parts
SELECT content_id, content_type, size, sha256, chunks FROM message_parts
WHERE message_pk = $1 ORDER BY content_id;

-- name: part_chunk
SELECT data FROM message_part_chunks WHERE message_pk = $1 AND content_id = $2 AND seq = $3;
