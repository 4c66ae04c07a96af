-- insert_messages (the group-commit insert) as PL/pgSQL with one generic plan, planned once per
-- connection. As LANGUAGE sql its body (five CTEs, three inserts, the e-CMS resend guard) was parsed
-- and planned on every call: 0.6 ms of PostgreSQL CPU per group commit even for an empty batch, more
-- than the letters' own rows at the gateway's usual 1-4 letters per commit (bench/pg_letter.py
-- --batch 2: 0.95 -> 0.55 ms of PostgreSQL CPU per letter). The generic plan was measured on a
-- circular letter too (one message, 8,000 deliveries): 110-140 ms of PostgreSQL CPU either way.
-- Same parameters, same result type, same rows: CREATE OR REPLACE.
CREATE OR REPLACE FUNCTION insert_messages(batch new_message[], dels new_delivery[])
RETURNS TABLE (out_ord integer, out_pk bigint, out_sent_otherwise text)
LANGUAGE plpgsql VOLATILE
-- (0018) PL/pgSQL with one generic plan: as LANGUAGE sql the body was parsed and planned on every
-- call, 0.6 ms of CPU per group commit (bench/pg_letter.py --batch 2: 0.95 -> 0.55 ms per letter).
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
RETURN QUERY
WITH input AS (
    SELECT * FROM unnest(batch)
), r AS (
    -- A message with more than 50 deliveries (a circular letter) is bulk: its deliveries are
    -- claimed after ordinary ones that are due (claim_due), so it never starves other letters.
    SELECT u.*, count(*) OVER (PARTITION BY u.ord) > 50 AS bulk FROM unnest(dels) u
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
    INSERT INTO deliveries (id, message_pk, recipient, route, status, next_attempt_at, created_at, expires_at, bulk)
    SELECT r.id, mi.pk, r.recipient, r.route, r.status::delivery_status,
           greatest(mi.accepted_at, coalesce(dest.backoff_until, mi.accepted_at)), mi.accepted_at, r.expires_at,
           r.bulk
    FROM r JOIN mi ON mi.ord = r.ord
    LEFT JOIN destinations dest ON dest.agency = r.recipient
), a AS (
    -- (data-modifying CTEs always run to completion, read or not)
    INSERT INTO audit_events (at, actor, kind, message_pk, details)
    SELECT mi.accepted_at, mi.sender, 'message.accepted', mi.pk, mi.audit::jsonb FROM mi ORDER BY mi.ord
)
SELECT ord, pk, NULL FROM mi
UNION ALL
SELECT ord, NULL, recipient FROM blocked;
END
$$;
