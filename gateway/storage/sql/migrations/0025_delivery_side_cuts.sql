-- 0025: what PostgreSQL does per delivered letter, cut where it is work nobody reads (issue 17).
--
-- Measured with bench/pg_delivery.py under callgrind (every instruction of the backends that claim and record
-- the deliveries: four claims, four outcomes and two delivery receipts a letter):
-- 1. forwarded_bytes() (0019) was a PL/pgSQL loop called once per row read: every claimed delivery (the bytes
--    to push), every receipt message in apply_delivery_transitions, every reader. A sealed letter has two
--    edits, a delivery receipt one: those are now one SQL expression that the planner inlines into the query
--    reading them; more edits go through the loop as before (forwarded_bytes_edits). Same bytes: the
--    expression is the loop's pieces written out (tests/integration/test_forwarded_bytes.py holds them
--    together with the loop over generated edits).
-- 2. apply_delivery_transitions rebuilt each delivery receipt's signed bytes from its message's edits (0024)
--    only to keep them beside the receipts row that names its message, which never reads them. Now only a
--    receipts row that keeps its own copy (one that names no message) has them rebuilt, in its INSERT.
-- 3. messages_letter (letter number and date: the e-CMS resend rule and the look-ups by number) held an entry
--    for every message, and a delivery receipt (like any message sent without a number) has none: two entries
--    a letter on the delivery side that no query can use (every one asks letter_number = ...). Now partial,
--    WHERE letter_number IS NOT NULL, which those queries imply (their plans, generic and custom, keep it).
-- 4. apply_delivery_transitions skips the statements with nothing to do: the failures' destinations statements
--    and the backoff move (now a statement of its own) when every outcome is delivered, insert_messages()
--    when no delivery receipt is made. Each statement's executor start-up (a tuple descriptor of the 19
--    fields of every unnest(p_transitions), the indexes of each table written) cost more than its rows:
--    ~3.7M instructions a call besides its rows (--batch 4 against 64).
-- 5. Plans that stay on indexes. A connection plans each statement of apply_delivery_transitions once, at its
--    first use, and keeps the plan; on a new database (every bench/e2e.py run, a new installation until
--    autovacuum's ANALYZE) the tables were nearly empty then, and the outcome's UPDATE read deliveries whole
--    (Seq Scan, Hash Join) on every later call, every row stored since. The function now plans with
--    enable_seqscan off: every row it touches is found through an index (its key).
--    (claim_due, in queries.sql, finds the claimed rows by their key: d.id = ANY (ARRAY(...)).)

-- The edits applied by a loop: what forwarded_bytes() did for every row up to 0025, now for rows of more than
-- two edits (the same statements).
CREATE FUNCTION forwarded_bytes_edits(received bytea, edits integer[], inserts bytea)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    out  bytea := '';
    pos  integer := 0;  -- bytes of received consumed
    used integer := 0;  -- bytes of inserts consumed
BEGIN
    FOR k IN 1 .. coalesce(array_length(edits, 1), 0) / 3 LOOP
        out := out || substring(received FROM pos + 1 FOR edits[3 * k - 2] - pos)
                   || substring(inserts FROM used + 1 FOR edits[3 * k]);
        pos := edits[3 * k - 2] + edits[3 * k - 1];
        used := used + edits[3 * k];
    END LOOP;
    RETURN out || substring(received FROM pos + 1);
END $$;

-- The forwarded bytes of a message row: forwarded, or received with its edits applied. One or two edits (a
-- delivery receipt's signature inserted; a letter's header Id and seal) are the loop's pieces written out, in
-- one SQL expression the planner inlines into the query that reads them: no PL/pgSQL call per row.
CREATE OR REPLACE FUNCTION forwarded_bytes(received bytea, forwarded bytea, edits integer[], inserts bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN forwarded IS NOT NULL THEN forwarded
        WHEN array_length(edits, 1) = 3
            THEN substring(received FROM 1 FOR edits[1]) || substring(inserts FROM 1 FOR edits[3])
                 || substring(received FROM edits[1] + edits[2] + 1)
        WHEN array_length(edits, 1) = 6
            THEN substring(received FROM 1 FOR edits[1]) || substring(inserts FROM 1 FOR edits[3])
                 || substring(received FROM edits[1] + edits[2] + 1 FOR edits[4] - edits[1] - edits[2])
                 || substring(inserts FROM edits[3] + 1 FOR edits[6])
                 || substring(received FROM edits[4] + edits[5] + 1)
        ELSE forwarded_bytes_edits(received, edits, inserts)
    END
$$;

DROP INDEX messages_letter;
CREATE INDEX messages_letter ON messages (letter_number, letter_date) WHERE letter_number IS NOT NULL;

CREATE OR REPLACE FUNCTION apply_delivery_transitions(p_transitions delivery_transition[], p_receipts new_message[],
                                           p_receipt_deliveries new_delivery[])
RETURNS TABLE (out_ord integer, out_applied boolean)
LANGUAGE plpgsql VOLATILE
-- (0022) one generic plan per statement, planned once per connection (custom plans were planned anew on every call);
-- (0025) on indexes: planned on a new database's nearly empty tables, the UPDATE of deliveries read every
-- delivery by a Seq Scan and a Hash Join for as long as the connection lived (every row is found by its key)
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    done uuid[];
    receipts new_message[] := '{}';
    rec new_message;
    item record;
    same boolean;
    signed bytea;
    linked integer[] := '{}';  -- ords of receipt messages that hold the transition's receipt and ack
    ords integer[] := '{}';
    pks bigint[] := '{}';
    failed boolean;      -- (0025) a failure that counts against its destination
    undelivered boolean; -- (0025) any outcome but delivered
BEGIN
    -- (0025) Statements with nothing to do are not run: each one's executor start-up (a tuple descriptor of the
    -- 19 fields of every unnest(p_transitions), the indexes of every table it writes) cost more than its rows.
    SELECT coalesce(bool_or(x.outcome <> 'delivered' AND NOT x.permanent), false),
           coalesce(bool_or(x.outcome <> 'delivered'), false)
    INTO failed, undelivered FROM unnest(p_transitions) x;

    INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, error)
    SELECT x.delivery_id, x.attempt, x.started_at, x.at,
           CASE WHEN x.outcome = 'delivered' THEN 'delivered' WHEN x.permanent THEN 'refused' ELSE 'failed' END,
           CASE WHEN x.outcome = 'delivered' THEN NULL ELSE x.reason END
    FROM unnest(p_transitions) x WHERE x.attempt IS NOT NULL
    ORDER BY x.ord
    ON CONFLICT (delivery_id, attempt) DO UPDATE
    SET finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome, error = EXCLUDED.error;

    -- Destinations that failed: one more consecutive failure each, then backoff once the count
    -- reaches the threshold (the circuit opens).
    IF failed THEN
    INSERT INTO destinations AS dst (agency, consecutive_failures, failing_since, last_error, updated_at)
    SELECT f.recipient, f.n, f.at, f.reason, f.at FROM (
        SELECT x.recipient, count(*)::integer AS n, min(x.at) AS at,
               (array_agg(x.reason ORDER BY x.ord DESC))[1] AS reason
        FROM unnest(p_transitions) x WHERE x.outcome <> 'delivered' AND NOT x.permanent
        GROUP BY x.recipient) f
    ON CONFLICT (agency) DO UPDATE
    SET consecutive_failures = dst.consecutive_failures + EXCLUDED.consecutive_failures,
        failing_since = coalesce(dst.failing_since, EXCLUDED.failing_since),
        last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at;

    UPDATE destinations dst
    SET backoff_until = greatest(coalesce(dst.backoff_until, b.until), b.until)
    FROM (SELECT x.recipient, max(x.at + make_interval(secs => x.backoff_s)) AS until,
                 max(x.breaker_threshold) AS threshold
          FROM unnest(p_transitions) x WHERE x.outcome <> 'delivered' AND NOT x.permanent
          GROUP BY x.recipient) b
    WHERE dst.agency = b.recipient AND dst.consecutive_failures >= b.threshold;
    END IF;

    -- Destinations that answered (a delivery, or a refusal: the office is up): healthy again.
    UPDATE destinations dst
    SET consecutive_failures = 0, failing_since = NULL, backoff_until = NULL, last_error = NULL, updated_at = ok.at
    FROM (SELECT x.recipient, max(x.at) AS at FROM unnest(p_transitions) x
          WHERE x.reset_destination AND (x.outcome = 'delivered' OR x.permanent)
            AND NOT EXISTS (SELECT 1 FROM unnest(p_transitions) y WHERE y.recipient = x.recipient
                                                        AND y.outcome <> 'delivered' AND NOT y.permanent)
          GROUP BY x.recipient) ok
    WHERE dst.agency = ok.recipient AND (dst.consecutive_failures > 0 OR dst.backoff_until IS NOT NULL);

    WITH changed AS (
        UPDATE deliveries d
        SET status = CASE x.outcome WHEN 'delivered' THEN 'delivered' WHEN 'retry' THEN 'retry_wait'
                                    ELSE 'dead' END::delivery_status,
            delivered_at = CASE WHEN x.outcome = 'delivered' THEN x.at ELSE d.delivered_at END,
            next_attempt_at = CASE WHEN x.outcome = 'retry'
                                   THEN greatest(x.due_at, coalesce(dst.backoff_until, x.due_at))
                                   ELSE d.next_attempt_at END,
            last_error = CASE WHEN x.outcome = 'delivered' THEN NULL ELSE x.reason END,
            leased_by = NULL
        FROM unnest(p_transitions) x LEFT JOIN destinations dst ON dst.agency = x.recipient
        WHERE d.id = x.delivery_id
          -- (0025) the rows by their key whatever the plan: this generic plan, made once per connection while
          -- deliveries had no statistics yet (a new database), joined them by a Seq Scan of every delivery
          AND d.id = ANY (ARRAY(SELECT y.delivery_id FROM unnest(p_transitions) y))
          AND CASE WHEN x.outcome = 'delivered'
                   THEN d.status IN ('sending', 'inbox', 'queued', 'retry_wait')
                        AND (x.worker IS NULL OR d.leased_by = x.worker)
                   ELSE d.status = 'sending' AND d.leased_by = x.worker END
        RETURNING d.id, d.next_attempt_at
    ), events AS (
        INSERT INTO audit_events (at, actor, kind, message_pk, delivery_id, details)
        SELECT x.at, x.actor,
               CASE x.outcome WHEN 'delivered' THEN 'delivery.delivered' WHEN 'retry' THEN 'delivery.retry'
                              ELSE 'delivery.dead' END,
               x.message_pk, x.delivery_id,
               CASE WHEN x.outcome = 'retry' AND c.next_attempt_at <> x.due_at
                    THEN x.details::jsonb || jsonb_build_object('next_attempt_at', c.next_attempt_at)
                    ELSE x.details::jsonb END
        FROM unnest(p_transitions) x JOIN changed c ON c.id = x.delivery_id
        ORDER BY x.ord
    )
    SELECT coalesce(array_agg(c.id), '{}') INTO done FROM changed c;

    IF undelivered THEN
        -- While a destination backs off, its waiting deliveries move past the backoff so the claim
        -- query never wades through them. (0025: a statement of its own, run only after an outcome other than
        -- delivered; the deliveries of the batch are left out as before, so it writes the same rows.)
        UPDATE deliveries d SET next_attempt_at = dst.backoff_until
        FROM destinations dst
        WHERE dst.agency IN (SELECT x.recipient FROM unnest(p_transitions) x WHERE x.outcome <> 'delivered')
          AND dst.backoff_until IS NOT NULL AND d.recipient = dst.agency
          AND d.status IN ('queued', 'retry_wait') AND d.next_attempt_at < dst.backoff_until
          AND d.id NOT IN (SELECT x.delivery_id FROM unnest(p_transitions) x);
    END IF;

    -- The delivery receipts of what was delivered, as new messages back to the senders (ord names
    -- the transition that produced each). A receipt message's forwarded bytes, its receipt and its evidence
    -- that are the transition's signed receipt and acknowledgement come empty (sent once, 0022) and are
    -- filled here; forwarded bytes may also come as edits of the unsigned receipt (0023, as a letter's,
    -- 0019). A message whose forwarded bytes are the signed receipt keeps no receipt of its own (NULL:
    -- the same bytes, 0023), and one that also holds the acknowledgement (every one the gateway makes)
    -- is what the delivery's receipts row names in place of copies of them. A transition's receipt that
    -- comes NULL (0024) is its message's forwarded bytes, sent as edits: taken from them, for the message
    -- and for a receipts row that holds its own copy.
    IF cardinality(p_receipts) > 0 THEN  -- (0025) none: no loop, no insert_messages() start-up
    FOR item IN
        SELECT r, x.receipt AS signed, x.ack FROM unnest(p_receipts) r JOIN unnest(p_transitions) x ON x.ord = r.ord
        WHERE x.delivery_id = ANY (done) ORDER BY r.ord
    LOOP
        rec := item.r;
        IF rec.evidence = '' THEN rec.evidence := item.ack; END IF;
        signed := item.signed;
        IF signed IS NULL THEN
            -- (0025) the message's forwarded bytes, as edits: not rebuilt here (only a receipts row that keeps
            -- its own copy reads them, below); they are the transition's signed receipt, never empty
            same := true;
        ELSE
            IF rec.forwarded = '' THEN rec.forwarded := signed; END IF;
            same := signed <> ''
                    AND forwarded_bytes(rec.received, rec.forwarded, rec.forwarded_edits, rec.forwarded_inserts) = signed;
        END IF;
        IF rec.receipt = '' THEN rec.receipt := CASE WHEN same THEN NULL ELSE signed END; END IF;
        IF same AND rec.evidence IS NOT DISTINCT FROM item.ack THEN linked := linked || rec.ord; END IF;
        receipts := receipts || rec;
    END LOOP;
    END IF;
    IF cardinality(receipts) > 0 THEN
    SELECT coalesce(array_agg(i.out_ord), '{}'), coalesce(array_agg(i.out_pk), '{}') INTO ords, pks
    FROM insert_messages(
        receipts,
        ARRAY(SELECT rd::new_delivery FROM unnest(p_receipt_deliveries) rd JOIN unnest(p_transitions) x ON x.ord = rd.ord
              WHERE x.delivery_id = ANY (done) ORDER BY rd.ord)) i
    WHERE i.out_pk IS NOT NULL AND i.out_ord = ANY (linked);
    END IF;

    INSERT INTO receipts (message_pk, delivery_id, kind, receipt, ack, created_at, receipt_message_pk)
    SELECT x.message_pk, x.delivery_id, 'delivery',
           CASE WHEN l.pk IS NULL
                THEN coalesce(x.receipt, (SELECT forwarded_bytes(r.received, r.forwarded, r.forwarded_edits,
                                                                 r.forwarded_inserts)
                                          FROM unnest(p_receipts) r WHERE r.ord = x.ord)) END,
           CASE WHEN l.pk IS NULL THEN x.ack END, x.at, l.pk
    FROM unnest(p_transitions) x LEFT JOIN unnest(ords, pks) l (ord, pk) ON l.ord = x.ord
    WHERE x.outcome = 'delivered' AND x.delivery_id = ANY (done)
    ORDER BY x.ord
    ON CONFLICT (delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING;

    RETURN QUERY SELECT x.ord, x.delivery_id = ANY (done) FROM unnest(p_transitions) x ORDER BY x.ord;
END $$;
