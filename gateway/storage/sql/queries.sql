-- Named queries, looked up by name through gateway.db.queries. Each block
-- starts with "-- name: <name>" and runs to the next such line.

-- name: get_message
SELECT pk, sender, message_id, message_type::text AS message_type, conversation_id, ref_to_message_id,
       letter_number, letter_date, subject, received_sha256,
       message_receipt(receipt, received, forwarded, forwarded_edits, forwarded_inserts) AS receipt, accepted_at, channel
FROM messages WHERE sender = $1 AND message_id = $2;

-- name: get_message_by_pk
SELECT pk, sender, message_id, message_type::text AS message_type, conversation_id, ref_to_message_id,
       letter_number, letter_date, subject, received_sha256,
       message_receipt(receipt, received, forwarded, forwarded_edits, forwarded_inserts) AS receipt, accepted_at, channel,
       forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) AS forwarded
FROM messages WHERE pk = $1;

-- name: message_deliveries
SELECT d.id, d.recipient, d.route, d.status::text AS status, d.attempts, d.next_attempt_at,
       d.last_error, d.created_at, d.delivered_at, d.expires_at
FROM deliveries d WHERE d.message_pk = $1 AND ($2::text IS NULL OR d.recipient > $2)
ORDER BY d.recipient
LIMIT $3;

-- name: claim_due
-- Claim up to $2 due deliveries for this worker ($4) with a lease of $3.
-- SKIP LOCKED lets any number of gateway processes claim side by side; an
-- expired lease ('sending' with next_attempt_at in the past) is simply due.
-- Destinations still backing off are left alone: no network work for them.
-- Two lanes, each in due order: ordinary deliveries first, then those of circular letters ('bulk'),
-- so one letter to thousands of offices never holds an ordinary letter behind it.
WITH ordinary AS (
    SELECT d.id, d.ctid, d.next_attempt_at FROM deliveries d
    WHERE NOT d.bulk AND d.status IN ('queued', 'sending', 'retry_wait') AND d.next_attempt_at <= $1
      AND NOT EXISTS (SELECT 1 FROM destinations x WHERE x.agency = d.recipient AND x.backoff_until > $1)
    ORDER BY d.next_attempt_at
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
), bulk AS (
    SELECT d.id, d.ctid, d.next_attempt_at FROM deliveries d
    WHERE d.bulk AND d.status IN ('queued', 'sending', 'retry_wait') AND d.next_attempt_at <= $1
      AND NOT EXISTS (SELECT 1 FROM destinations x WHERE x.agency = d.recipient AND x.backoff_until > $1)
    ORDER BY d.next_attempt_at
    LIMIT greatest($2 - (SELECT count(*) FROM ordinary), 0)
    FOR UPDATE OF d SKIP LOCKED
), due AS (
    SELECT id, ctid FROM ordinary UNION ALL SELECT id, ctid FROM bulk
), claimed AS (
    UPDATE deliveries d
    SET status = 'sending', next_attempt_at = $1 + $3::interval, leased_by = $4, attempts = d.attempts + 1
    -- (each claimed row found by its key: joined to the CTE, the generic plan read every delivery, Seq Scan and
    -- Hash Join, since it cannot know how many rows LIMIT $2 lets through. By its key alone, a plan made while
    -- deliveries held some hundreds of rows and no statistics still read them all (Seq Scan, the key as a filter)
    -- on every claim until an ANALYZE; with the locked row's address as well, a Seq Scan costs more than every
    -- way by key or address (Bitmap Index Scan on deliveries_pkey, Tid Scan). A row updated by another
    -- transaction after this statement's snapshot and before its lock is left for the next claim, not claimed
    -- twice: its address is then not the version this snapshot sees.)
    WHERE d.id = ANY (ARRAY(SELECT id FROM due)) AND d.ctid = ANY (ARRAY(SELECT ctid FROM due))
    RETURNING d.id, d.message_pk, d.recipient, d.route, d.attempts, d.created_at, d.expires_at, d.pinned_route
)
-- A message's forwarded bytes come once per claim, with the first of its deliveries claimed (NULL with the
-- others; gateway.storage.deliveries.claim_due gives each delivery its message's bytes): a letter to two
-- offices was read from TOAST, rebuilt from its edits, sent and decoded once per delivery.
-- (the columns in the order of ClaimedDelivery's fields: claim_due makes each one from the row's values)
SELECT c.id, c.message_pk, c.recipient, c.route, c.attempts, c.created_at, c.expires_at,
       m.message_id, m.sender, m.message_type::text AS message_type,
       CASE WHEN row_number() OVER (PARTITION BY c.message_pk) = 1
            THEN forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts) END AS forwarded,
       m.parts,
       coalesce((SELECT x.consecutive_failures FROM destinations x WHERE x.agency = c.recipient), 0)
           AS destination_failures,
       m.conversation_id, c.pinned_route
-- (each claimed row's message found by its key, in a subquery of its own: joined, the plan a connection kept from
-- a new database's nearly empty tables read messages whole by a Seq Scan and a Hash Join on every claim until
-- an ANALYZE replanned it; alone, a lookup by key is planned on the index even then)
FROM claimed c CROSS JOIN LATERAL (
    SELECT m.message_id, m.sender, m.message_type, m.parts, m.conversation_id, m.received, m.forwarded,
           m.forwarded_edits, m.forwarded_inserts
    FROM messages m WHERE m.pk = c.message_pk OFFSET 0) m;

-- name: release_claim
-- Give a claimed delivery back without having tried it (its destination went
-- into backoff while it waited in the batch): the attempt does not count.
-- A claim is (leased_by, attempts): re-claiming an expired lease bumps attempts,
-- so a stale holder never releases the claim that replaced it, even when the
-- new holder has the same worker name (this same process re-claiming it).
UPDATE deliveries SET status = 'retry_wait', next_attempt_at = $3, attempts = attempts - 1, leased_by = NULL
WHERE id = $1 AND status = 'sending' AND leased_by = $2 AND attempts = $4;

-- name: delivery_attempts
SELECT attempt, started_at, finished_at, outcome, error FROM delivery_attempts
WHERE delivery_id = $1 ORDER BY attempt;

-- name: destination_backoff_until
SELECT backoff_until FROM destinations WHERE agency = $1;

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
-- $1: the agency and those it serves through a 'via' route (a hub's inbox holds its offices' letters).
SELECT d.id, d.created_at, d.recipient, m.message_id, m.sender, m.message_type::text AS message_type,
       forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts) AS forwarded, m.parts, m.pk AS message_pk
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.recipient = ANY ($1::text[]) AND d.status = 'inbox' AND ($3::boolean OR m.message_type <> 'receipt')
ORDER BY d.created_at, d.id
LIMIT $2;

-- name: inbox_item
SELECT d.id, d.created_at, d.recipient, d.status::text AS status, m.message_id, m.sender,
       m.message_type::text AS message_type, forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts) AS forwarded,
       m.parts, m.pk AS message_pk
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.recipient = ANY ($1::text[]) AND d.id = $2;

-- name: delivery_for_ack
-- (read outside a transaction: the row lock lasts only for the statement)
SELECT d.id, d.status::text AS status, d.recipient, d.message_pk, m.message_id, m.sender,
       m.message_type::text AS message_type, m.conversation_id,
       forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts) AS forwarded
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.id = $1
FOR UPDATE OF d;

-- name: message_receipts
-- (receipts_full: a delivery receipt stored once, as its message's forwarded bytes, 0023)
SELECT delivery_id, kind, receipt, ack, created_at FROM receipts_full WHERE message_pk = $1 ORDER BY pk;

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
-- Group commit (the function, migration 0008): $1 new_message[], $2 new_delivery[].
SELECT out_ord AS ord, out_pk AS pk, out_sent_otherwise AS sent_otherwise
FROM insert_messages($1::new_message[], $2::new_delivery[]);

-- name: apply_delivery_transitions
-- Decided delivery outcomes applied in one round trip (the function, migration 0008):
-- $1 delivery_transition[], $2 new_message[] (the delivery receipts), $3 new_delivery[].
SELECT out_ord AS ord, out_applied AS applied
FROM apply_delivery_transitions($1::delivery_transition[], $2::new_message[], $3::new_delivery[]);

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
    LEFT JOIN LATERAL latest_registry_answer(m.pk, d.recipient) ans ON true
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
    LEFT JOIN LATERAL latest_registry_answer(m.pk, d.recipient) ans ON true
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
-- Each recipient's latest answer to letter $1 among the recipients $2 (latest_registry_answer,
-- migration 0008: a letter resent under the same number and date does not inherit its withdrawn
-- predecessor's rejection).
SELECT d.recipient AS sender, ans.notifier_kind, ans.registry_number, ans.accepted_at, ans.message_id
FROM deliveries d
CROSS JOIN LATERAL latest_registry_answer(d.message_pk, d.recipient) ans
WHERE d.message_pk = $1 AND d.recipient = ANY ($2::text[])
ORDER BY d.recipient;

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

-- name: stamped_letter_of_recipient
SELECT s.pdf FROM stamped_letters s JOIN messages m ON m.pk = s.letter_pk
WHERE m.message_id = $1 AND s.recipient = $2;

-- name: stamped_letter
SELECT s.pdf, s.registry_number, m.sender FROM stamped_letters s JOIN messages m ON m.pk = s.letter_pk
WHERE m.sender = $1 AND m.message_id = $2 AND s.recipient = $3;

-- name: outbound_depth
SELECT count(*) FROM deliveries WHERE status IN ('queued', 'sending', 'retry_wait');

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
