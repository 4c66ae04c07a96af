-- What a letter costs PostgreSQL, cut (issue 17; bench/pg_letter.py and bench/submit.py --signed).
--
-- 1. The forwarded (sealed) envelope is stored as edits of the received one (gateway.storage.forwarded):
--    forwarded_edits (triples: offset in received, bytes cut there, bytes inserted there) and
--    forwarded_inserts (the inserted bytes), ~3.2 KB for a sealed letter instead of ~13 KB; forwarded
--    itself only when edits would not save half of it. Every reader goes through forwarded_bytes().
-- 2. The console's Thai substring search (pg_trgm) moves off the insert: message_search holds the
--    subject and letter number of each message, filled in batches after commit by
--    message_search_fill() (gateway.exchange.search_index) up to the audit chain's head (final: the
--    sealer's fence); the search queries add the messages accepted after its watermark, so nothing
--    is missed while it lags. The two trigram GIN indexes and the redundant messages_accepted_at
--    (messages_accepted_pk serves every accepted_at range) leave messages.
-- 3. deliveries_pending_by_recipient (recipient, for queued and retry_wait) goes: deliveries_open
--    (recipient, status, for every open status) serves the same look-ups; one index entry less per
--    delivery (two per letter) and per move into queued or retry_wait.

ALTER TABLE messages ALTER COLUMN forwarded DROP NOT NULL,
                     ADD COLUMN forwarded_edits integer[],
                     ADD COLUMN forwarded_inserts bytea,
                     ADD CONSTRAINT messages_forwarded_stored
                         CHECK (forwarded IS NOT NULL OR (forwarded_edits IS NOT NULL AND forwarded_inserts IS NOT NULL));
-- out of line without pglz, as received and forwarded (0016): base64 of signatures does not compress
ALTER TABLE messages ALTER COLUMN forwarded_inserts SET STORAGE EXTERNAL;

-- The forwarded bytes of a message row: forwarded, or received with its edits applied.
CREATE FUNCTION forwarded_bytes(received bytea, forwarded bytea, edits integer[], inserts bytea)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    out  bytea := '';
    pos  integer := 0;  -- bytes of received consumed
    used integer := 0;  -- bytes of inserts consumed
BEGIN
    IF forwarded IS NOT NULL THEN
        RETURN forwarded;
    END IF;
    FOR k IN 1 .. coalesce(array_length(edits, 1), 0) / 3 LOOP
        out := out || substring(received FROM pos + 1 FOR edits[3 * k - 2] - pos)
                   || substring(inserts FROM used + 1 FOR edits[3 * k]);
        pos := edits[3 * k - 2] + edits[3 * k - 1];
        used := used + edits[3 * k];
    END LOOP;
    RETURN out || substring(received FROM pos + 1);
END $$;

ALTER TYPE new_message ADD ATTRIBUTE forwarded_edits integer[], ADD ATTRIBUTE forwarded_inserts bytea;

-- insert_messages writes the edits (same parameters, result and rows).
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
    -- The letters are found by number and date alone (OFFSET 0 keeps that subquery whole; with the
    -- sender inside it, a plan made on an empty table read every letter the sender ever sent through
    -- messages_sender_accepted, once per recipient) and min() takes
    -- the first recipient: with ORDER BY ... LIMIT 1 the planner walked the recipient's deliveries
    -- newest first to stop early, through every letter that recipient ever had when none matched.
    SELECT i.ord, other.recipient FROM input i
    CROSS JOIN LATERAL (
        SELECT min(latest.recipient) AS recipient FROM (
            SELECT DISTINCT ON (d.recipient) d.recipient, pm.message_id
            FROM (SELECT pk, message_id, accepted_at, sender, message_type FROM messages
                  WHERE letter_number = i.letter_number AND letter_date = i.letter_date OFFSET 0) pm
            JOIN deliveries d ON d.message_pk = pm.pk
            WHERE pm.sender = i.sender AND pm.message_type = 'letter'
              AND d.status <> 'withdrawn' AND d.recipient IN (SELECT r.recipient FROM r WHERE r.ord = i.ord)
            ORDER BY d.recipient, pm.accepted_at DESC, pm.pk DESC
        ) latest
        WHERE split_part(latest.message_id, '.r', 1) <> i.resend_guard
    ) other
    WHERE i.resend_guard IS NOT NULL AND other.recipient IS NOT NULL
), m AS (
    INSERT INTO messages (sender, message_id, message_type, conversation_id, ref_to_message_id,
                          letter_number, letter_date, subject, speed, secrecy, channel,
                          received_sha256, received, forwarded, forwarded_edits, forwarded_inserts, evidence,
                          receipt, accepted_at, notifier_kind, registry_number, parts)
    SELECT sender, message_id, message_type::message_type, conversation_id, ref_to_message_id, letter_number,
           letter_date, subject, speed, secrecy, channel, received_sha256, received, forwarded, forwarded_edits,
           forwarded_inserts, evidence, receipt, accepted_at, notifier_kind, registry_number, parts
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

-- The console's substring search (pg_trgm GIN), off the insert path. No reference to messages: a
-- derived index of it, refilled from it.
CREATE TABLE message_search (
    message_pk    bigint PRIMARY KEY,
    accepted_at   timestamptz NOT NULL,
    sender        text NOT NULL,            -- (with message_type: every filter of a page is answered
    message_type  message_type NOT NULL,    -- here, before its LIMIT, without reading messages)
    subject       text,
    letter_number text
);

-- seq: every message whose message.accepted event has seq <= this is in message_search (when it has a
-- subject or a number); the search adds the messages of later events itself.
CREATE TABLE message_search_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

INSERT INTO message_search (message_pk, accepted_at, sender, message_type, subject, letter_number)
SELECT pk, accepted_at, sender, message_type, subject, letter_number FROM messages WHERE subject IS NOT NULL OR letter_number IS NOT NULL;
INSERT INTO message_search_state (seq, updated_at) SELECT seq, now() FROM audit_chain_head;
-- the indexes after the rows: one bulk build each, not a million inserts
CREATE INDEX message_search_subject_trgm ON message_search USING gin (subject gin_trgm_ops);
CREATE INDEX message_search_letter_number_trgm ON message_search USING gin (letter_number gin_trgm_ops);
-- newest first, as the search pages: a common word is found by walking this, a rare one by the trigrams
CREATE INDEX message_search_accepted ON message_search (accepted_at DESC, message_pk DESC);

-- One round of the filler: the messages accepted after the watermark, up to the audit chain's head
-- (at most p_batch sequence numbers), and the watermark moved, in the caller's transaction. NULL when
-- another process holds the round.
CREATE FUNCTION message_search_fill(p_batch bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE
-- planned for its actual range each round (once a second): a generic plan could not tell a few hundred
-- events from ten million
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    wm   bigint;
    upto bigint;
BEGIN
    SELECT seq INTO wm FROM message_search_state FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    upto := least((SELECT seq FROM audit_chain_head), wm + p_batch);
    IF upto <= wm THEN
        RETURN wm;
    END IF;
    INSERT INTO message_search (message_pk, accepted_at, sender, message_type, subject, letter_number)
    SELECT m.pk, m.accepted_at, m.sender, m.message_type, m.subject, m.letter_number
    FROM audit_events e JOIN messages m ON m.pk = e.message_pk
    WHERE e.kind = 'message.accepted' AND e.seq > wm AND e.seq <= upto
      AND (m.subject IS NOT NULL OR m.letter_number IS NOT NULL)
    ON CONFLICT (message_pk) DO NOTHING;
    UPDATE message_search_state SET seq = upto, updated_at = now();
    RETURN upto;
END $$;

DROP INDEX messages_subject_trgm, messages_letter_number_trgm, messages_accepted_at;
DROP INDEX deliveries_pending_by_recipient;
