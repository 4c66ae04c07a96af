-- apply_delivery_transitions (every delivery outcome's group commit), two changes, same parameters,
-- same result: CREATE OR REPLACE.
--
-- Planned once per connection, as insert_messages is since 0018. PL/pgSQL plans each of its statements
-- through the plan cache, which kept choosing custom plans for these (the arrays' lengths move their
-- estimates), so every call planned its eight statements again: pg_stat_statements under bench/e2e.py
-- showed ~0.3 ms of planning per call, most of it the UPDATE of deliveries with its audit, receipt and
-- backoff CTEs. The generic plans use the same indexes (the deliveries' and destinations' keys).
--
-- A delivery receipt crossed the wire three times: as the transition's receipt and as its message's
-- forwarded bytes and receipt (~3.5 KB each, for two of the four deliveries of every letter). The
-- message's two may now come empty and are filled here from the transition's (the rows stored are the
-- same); the loop sets the two fields by name, so a field added to new_message later needs no change here.
CREATE OR REPLACE FUNCTION apply_delivery_transitions(p_transitions delivery_transition[], p_receipts new_message[],
                                           p_receipt_deliveries new_delivery[])
RETURNS TABLE (out_ord integer, out_applied boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    done uuid[];
    receipts new_message[] := '{}';
    rec new_message;
    item record;
BEGIN
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
    ), receipt_rows AS (
        INSERT INTO receipts (message_pk, delivery_id, kind, receipt, ack, created_at)
        SELECT x.message_pk, x.delivery_id, 'delivery', x.receipt, x.ack, x.at
        FROM unnest(p_transitions) x JOIN changed c ON c.id = x.delivery_id
        WHERE x.outcome = 'delivered'
        ORDER BY x.ord
        ON CONFLICT (delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING
    ), moved AS (
        -- While a destination backs off, its waiting deliveries move past the backoff so the claim
        -- query never wades through them.
        UPDATE deliveries d SET next_attempt_at = dst.backoff_until
        FROM destinations dst
        WHERE dst.agency IN (SELECT x.recipient FROM unnest(p_transitions) x WHERE x.outcome <> 'delivered')
          AND dst.backoff_until IS NOT NULL AND d.recipient = dst.agency
          AND d.status IN ('queued', 'retry_wait') AND d.next_attempt_at < dst.backoff_until
          AND d.id NOT IN (SELECT x.delivery_id FROM unnest(p_transitions) x)
    )
    SELECT coalesce(array_agg(c.id), '{}') INTO done FROM changed c;

    -- The delivery receipts of what was delivered, as new messages back to the senders (ord names
    -- the transition that produced each). A receipt message's forwarded bytes and its receipt are the
    -- transition's signed receipt: sent once (the message's own come empty, 0022), filled in here.
    FOR item IN
        SELECT r, x.receipt AS signed FROM unnest(p_receipts) r JOIN unnest(p_transitions) x ON x.ord = r.ord
        WHERE x.delivery_id = ANY (done) ORDER BY r.ord
    LOOP
        rec := item.r;
        IF rec.forwarded = '' THEN rec.forwarded := item.signed; END IF;
        IF rec.receipt = '' THEN rec.receipt := item.signed; END IF;
        receipts := receipts || rec;
    END LOOP;
    PERFORM 1 FROM insert_messages(
        receipts,
        ARRAY(SELECT rd::new_delivery FROM unnest(p_receipt_deliveries) rd JOIN unnest(p_transitions) x ON x.ord = rd.ord
              WHERE x.delivery_id = ANY (done) ORDER BY rd.ord));

    RETURN QUERY SELECT x.ord, x.delivery_id = ANY (done) FROM unnest(p_transitions) x ORDER BY x.ord;
END $$;
