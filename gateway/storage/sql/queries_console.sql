-- Letter search, timelines, queues and dead letters for the auditor API and the console.
-- Optional filters are NULL; callers run these with plan_cache_mode = force_custom_plan so
-- the planner sees the actual pattern (pg_trgm GIN of message_search for substrings) and drops unused filters.

-- name: search_messages
-- Keyset pagination, newest first: ($7, $8) is the (accepted_at, pk) of the last row shown.
SELECT m.pk, m.sender, m.message_id, m.message_type::text AS message_type, m.letter_number, m.letter_date,
       m.subject, m.accepted_at, m.speed, m.secrecy,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('recipient', d.recipient, 'status', d.status::text)
                                  ORDER BY d.recipient), '[]'::jsonb)
        FROM deliveries d WHERE d.message_pk = m.pk) AS deliveries
FROM messages m
WHERE ($1::text IS NULL OR m.sender = $1
       OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_pk = m.pk AND d.recipient = $1))
  AND ($2::timestamptz IS NULL OR m.accepted_at >= $2)
  AND ($3::timestamptz IS NULL OR m.accepted_at < $3)
  AND ($4::text IS NULL OR m.letter_number LIKE '%' || $4 || '%')
  AND ($5::text IS NULL OR m.subject LIKE '%' || $5 || '%')
  AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_pk = m.pk
                                   AND d.status = $6::delivery_status))
  AND ($7::timestamptz IS NULL OR (m.accepted_at, m.pk) < ($7, $8))
  AND ($9::text IS NULL OR m.message_type = $9::message_type)
ORDER BY m.accepted_at DESC, m.pk DESC
LIMIT $10;

-- name: search_messages_text
-- search_messages with a substring ($4 number, $5 subject; no status), same parameters, rows and order,
-- and $11 the search table's watermark (message_search_state.seq, read first in the same transaction: a
-- value, so the planner knows how few letters follow it). The trigram indexes are on message_search
-- (migration 0019), filled after commit up to its watermark; the letters accepted after it (their
-- message.accepted events) are tested here one by one, so a letter is found from the moment it is
-- accepted. Each branch is a page on its own (the first $10 of the union are among the first $10 of
-- each): a common word walks message_search newest first (message_search_accepted) and stops after a
-- page, a rare one reads its trigrams, as one query over one table plans it (every filter is answered
-- from message_search; messages is read for the page's rows only).
SELECT m.pk, m.sender, m.message_id, m.message_type, m.letter_number, m.letter_date, m.subject, m.accepted_at,
       m.speed, m.secrecy,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('recipient', d.recipient, 'status', d.status::text)
                                  ORDER BY d.recipient), '[]'::jsonb)
        FROM deliveries d WHERE d.message_pk = m.pk) AS deliveries
FROM ((SELECT m.pk, m.sender, m.message_id, m.message_type::text AS message_type, m.letter_number, m.letter_date,
              m.subject, m.accepted_at, m.speed, m.secrecy
       FROM (SELECT s.message_pk FROM message_search s
             WHERE ($4::text IS NULL OR s.letter_number LIKE '%' || $4 || '%')
               AND ($5::text IS NULL OR s.subject LIKE '%' || $5 || '%')
               AND ($2::timestamptz IS NULL OR s.accepted_at >= $2)
               AND ($3::timestamptz IS NULL OR s.accepted_at < $3)
               AND ($7::timestamptz IS NULL OR (s.accepted_at, s.message_pk) < ($7, $8))
               AND ($1::text IS NULL OR s.sender = $1
                    OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_pk = s.message_pk AND d.recipient = $1))
               AND ($9::text IS NULL OR s.message_type = $9::message_type)
             ORDER BY s.accepted_at DESC, s.message_pk DESC
             LIMIT $10) page
       JOIN messages m ON m.pk = page.message_pk)
      UNION ALL
      (SELECT m.pk, m.sender, m.message_id, m.message_type::text, m.letter_number, m.letter_date, m.subject,
              m.accepted_at, m.speed, m.secrecy
       FROM messages m
       WHERE m.pk IN (SELECT e.message_pk FROM audit_events e WHERE e.kind = 'message.accepted' AND e.seq > $11)
         AND NOT EXISTS (SELECT 1 FROM message_search x WHERE x.message_pk = m.pk)
         AND ($4::text IS NULL OR m.letter_number LIKE '%' || $4 || '%')
         AND ($5::text IS NULL OR m.subject LIKE '%' || $5 || '%')
         AND ($2::timestamptz IS NULL OR m.accepted_at >= $2)
         AND ($3::timestamptz IS NULL OR m.accepted_at < $3)
         AND ($7::timestamptz IS NULL OR (m.accepted_at, m.pk) < ($7, $8))
         AND ($1::text IS NULL OR m.sender = $1
              OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_pk = m.pk AND d.recipient = $1))
         AND ($9::text IS NULL OR m.message_type = $9::message_type))) m
WHERE $6::text IS NULL  -- (a status goes to search_messages_by_status)
ORDER BY m.accepted_at DESC, m.pk DESC
LIMIT $10;

-- name: search_messages_by_status
-- search_messages with a status ($6, not NULL), same parameters, rows and order. It walks the
-- deliveries in that status newest first (deliveries_status_created; a delivery's created_at is its
-- message's accepted_at) and stops after a page, so a rare status (dead) does not test every letter
-- and a common one (delivered) reads one page. DISTINCT ON: a letter with two dead deliveries once.
SELECT m.pk, m.sender, m.message_id, m.message_type::text AS message_type, m.letter_number, m.letter_date,
       m.subject, m.accepted_at, m.speed, m.secrecy,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('recipient', d.recipient, 'status', d.status::text)
                                  ORDER BY d.recipient), '[]'::jsonb)
        FROM deliveries d WHERE d.message_pk = m.pk) AS deliveries
FROM (SELECT DISTINCT ON (s.created_at, s.message_pk) s.message_pk
      FROM deliveries s JOIN messages x ON x.pk = s.message_pk
      WHERE s.status = $6::delivery_status
        AND ($2::timestamptz IS NULL OR s.created_at >= $2)
        AND ($3::timestamptz IS NULL OR s.created_at < $3)
        AND ($7::timestamptz IS NULL OR (s.created_at, s.message_pk) < ($7, $8))
        AND ($1::text IS NULL OR x.sender = $1
             OR EXISTS (SELECT 1 FROM deliveries r WHERE r.message_pk = x.pk AND r.recipient = $1))
        AND ($4::text IS NULL OR x.letter_number LIKE '%' || $4 || '%')
        AND ($5::text IS NULL OR x.subject LIKE '%' || $5 || '%')
        AND ($9::text IS NULL OR x.message_type = $9::message_type)
      ORDER BY s.created_at DESC, s.message_pk DESC
      LIMIT $10) page
JOIN messages m ON m.pk = page.message_pk
ORDER BY m.accepted_at DESC, m.pk DESC;

-- name: search_events
-- Keyset by seq, newest first. $7: the agency acted, or sent or received the event's letter;
-- $8, $9: substrings of the event's letter number and subject (escaped for LIKE by the caller).
SELECT e.seq, e.at, e.actor, e.kind, e.message_pk, e.delivery_id, e.details
FROM audit_events e
WHERE ($1::text IS NULL OR e.kind = $1)
  AND ($2::timestamptz IS NULL OR e.at >= $2)
  AND ($3::timestamptz IS NULL OR e.at < $3)
  AND ($4::bigint IS NULL OR e.message_pk = $4)
  AND ($5::bigint IS NULL OR e.seq < $5)
  AND ($7::text IS NULL OR e.actor = $7
       OR EXISTS (SELECT 1 FROM messages m WHERE m.pk = e.message_pk
                  AND (m.sender = $7 OR EXISTS (SELECT 1 FROM deliveries d
                                                WHERE d.message_pk = m.pk AND d.recipient = $7))))
  AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM messages m WHERE m.pk = e.message_pk
                                   AND m.letter_number LIKE '%' || $8 || '%'))
  AND ($9::text IS NULL OR EXISTS (SELECT 1 FROM messages m WHERE m.pk = e.message_pk
                                   AND m.subject LIKE '%' || $9 || '%'))
ORDER BY e.seq DESC
LIMIT $6;

-- name: message_full
SELECT pk, sender, message_id, message_type::text AS message_type, conversation_id, ref_to_message_id,
       letter_number, letter_date, subject, speed, secrecy, channel, received_sha256, received,
       forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) AS forwarded, evidence,
       message_receipt(receipt, received, forwarded, forwarded_edits, forwarded_inserts) AS receipt, accepted_at
FROM messages WHERE pk = $1;

-- name: message_related
-- Notifiers and delivery receipts that answer a message (by its message id, from its recipients).
SELECT pk, sender, message_id, message_type::text AS message_type, accepted_at, received,
       forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) AS forwarded
FROM messages WHERE ref_to_message_id = $1 AND message_type IN ('notifier', 'receipt')
ORDER BY accepted_at, pk
LIMIT 500;

-- name: message_visible_to
-- May this agency see this message (sender or recipient)?
SELECT EXISTS (SELECT 1 FROM messages m WHERE m.pk = $1 AND m.sender = $2)
    OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_pk = $1 AND d.recipient = $2);

-- name: queue_by_destination
SELECT q.recipient, q.queued, q.sending, q.retry_wait, q.inbox, q.dead,
       x.consecutive_failures, x.failing_since, x.backoff_until, x.last_error
FROM (SELECT recipient,
             count(*) FILTER (WHERE status = 'queued') AS queued,
             count(*) FILTER (WHERE status = 'sending') AS sending,
             count(*) FILTER (WHERE status = 'retry_wait') AS retry_wait,
             count(*) FILTER (WHERE status = 'inbox') AS inbox,
             count(*) FILTER (WHERE status = 'dead') AS dead
      FROM deliveries WHERE status IN ('queued', 'sending', 'retry_wait', 'inbox', 'dead')
      GROUP BY recipient) q
LEFT JOIN destinations x ON x.agency = q.recipient
UNION ALL
SELECT x.agency, 0, 0, 0, 0, 0, x.consecutive_failures, x.failing_since, x.backoff_until, x.last_error
FROM destinations x
WHERE x.consecutive_failures > 0
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.recipient = x.agency
                  AND d.status IN ('queued', 'sending', 'retry_wait', 'inbox', 'dead'))
ORDER BY 1;

-- name: dead_letters
-- Keyset by (created_at, id), newest first.
SELECT d.id, d.recipient, d.route, d.attempts, d.last_error, d.created_at, d.message_pk,
       m.sender, m.message_id, m.letter_number, m.subject, m.speed, m.secrecy
FROM deliveries d JOIN messages m ON m.pk = d.message_pk
WHERE d.status = 'dead'
  AND ($1::timestamptz IS NULL OR (d.created_at, d.id) < ($1, $2))
ORDER BY d.created_at DESC, d.id DESC
LIMIT $3;

-- name: message_search_fill
-- One round of the search table's filler (migration 0019); the new watermark, NULL if another process has it.
SELECT message_search_fill($1::bigint);

-- name: message_search_watermark
SELECT seq FROM message_search_state;
