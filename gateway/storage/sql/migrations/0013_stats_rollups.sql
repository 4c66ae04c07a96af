-- 0013: statistics and service levels from rollups (gateway.storage.stats has the design).
-- The rollup job reads the audit events after its watermark (every state change of a letter is one:
-- message.accepted, delivery.delivered, delivery.dead, message.rejected) and adds them up per agency,
-- per hour and per Bangkok day, in the transaction that moves the watermark: nothing is added on the
-- intake path. The watermark only passes a sequence number once every transaction that could still
-- commit an event at or below it has ended (the audit sealer's fence: seq read, then running xids).

CREATE TABLE stats_watermark (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq        bigint NOT NULL,  -- every audit event with seq <= this is in the rollups
    fence_seq  bigint,           -- events up to this are final once none of fence_xids runs
    fence_xids text[],
    events     bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
INSERT INTO stats_watermark (seq, updated_at) VALUES (0, now());

-- One row per agency, side and hour (side 's': as the sending agency, 'r': as the receiving one).
-- letters: letters accepted (side s) or addressed to the agency (side r); delivered, dead: deliveries
-- of letters that completed or became dead letters; answered, registered: registry answers received
-- (ReceiveLetterNotifier) and registered with a number (AcceptLetterNotifier).
CREATE TABLE stats_hourly (
    side       "char" NOT NULL CHECK (side IN ('s', 'r')),
    agency     text NOT NULL,
    hour       timestamptz NOT NULL,
    letters    integer NOT NULL DEFAULT 0,
    delivered  integer NOT NULL DEFAULT 0,
    dead       integer NOT NULL DEFAULT 0,
    answered   integer NOT NULL DEFAULT 0,
    registered integer NOT NULL DEFAULT 0,
    PRIMARY KEY (side, hour, agency)
);
CREATE INDEX stats_hourly_agency ON stats_hourly (agency, side, hour);

-- The same per Bangkok day.
CREATE TABLE stats_daily (
    side       "char" NOT NULL CHECK (side IN ('s', 'r')),
    agency     text NOT NULL,
    day        date NOT NULL,
    letters    integer NOT NULL DEFAULT 0,
    delivered  integer NOT NULL DEFAULT 0,
    dead       integer NOT NULL DEFAULT 0,
    answered   integer NOT NULL DEFAULT 0,
    registered integer NOT NULL DEFAULT 0,
    PRIMARY KEY (side, day, agency)
);
CREATE INDEX stats_daily_agency ON stats_daily (agency, side, day);

-- Latency histograms per agency, side and Bangkok day; metric 'd': acceptance -> delivery, 'a':
-- delivery -> the registry's received answer, 'g': delivery -> registered. Bucket b holds durations
-- in (2^((b-1)/2), 2^(b/2)] seconds (b = 0: one second or less; b = 47: above 2^23 s, 97 days).
CREATE TABLE stats_latency (
    side   "char" NOT NULL,
    agency text NOT NULL,
    day    date NOT NULL,
    metric "char" NOT NULL CHECK (metric IN ('d', 'a', 'g')),
    bucket smallint NOT NULL CHECK (bucket BETWEEN 0 AND 47),
    n      integer NOT NULL,
    PRIMARY KEY (side, metric, day, agency, bucket)
);
CREATE INDEX stats_latency_agency ON stats_latency (agency, side, metric, day);

-- Submissions the gateway refused, per sending agency, hour and error code.
CREATE TABLE stats_refusals (
    agency text NOT NULL,
    hour   timestamptz NOT NULL,
    code   text NOT NULL,
    n      integer NOT NULL,
    PRIMARY KEY (hour, agency, code)
);
CREATE INDEX stats_refusals_agency ON stats_refusals (agency, hour);

CREATE FUNCTION stats_bucket(seconds double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN seconds IS NULL THEN NULL WHEN seconds <= 1 THEN 0::smallint
                ELSE least(47, ceil(2 * ln(seconds) / ln(2.0)))::smallint END
$$;

-- An agency and every agency below it in the directory (a ministry's subtree).
CREATE FUNCTION stats_subtree(root text) RETURNS TABLE (code text)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE t(code, depth) AS (
        SELECT a.code, 0 FROM agencies a WHERE a.code = root
        UNION ALL
        SELECT a.code, t.depth + 1 FROM agencies a JOIN t ON a.parent = t.code WHERE t.depth < 16
    )
    SELECT DISTINCT t.code FROM t
$$;

-- Add the audit events with p_from < seq <= p_to to the rollups; returns how many events counted.
-- One statement: the facts of every event, then one upsert per rollup table.
CREATE FUNCTION stats_roll(p_from bigint, p_to bigint) RETURNS integer
LANGUAGE sql VOLATILE AS $$
WITH ev AS (
    SELECT e.seq, e.kind, e.message_pk, e.delivery_id, e.actor, e.details, e.at FROM audit_events e
    WHERE e.seq > p_from AND e.seq <= p_to
      AND e.kind IN ('message.accepted', 'delivery.delivered', 'delivery.dead', 'message.rejected')
), accepted AS (
    SELECT m.* FROM ev JOIN messages m ON m.pk = ev.message_pk WHERE ev.kind = 'message.accepted'
), answers AS (
    -- a registry's answer (received / registered) and the delivery of the letter it answers: by
    -- message id, or the e-CMS way (number and date, the latest letter accepted before the answer)
    SELECT n.sender AS answering, n.notifier_kind, n.accepted_at AS at, l.sender AS letter_sender,
           extract(epoch FROM n.accepted_at - coalesce(l.delivered_at, l.accepted_at)) AS seconds
    FROM accepted n
    CROSS JOIN LATERAL (
        SELECT x.sender, x.accepted_at, x.delivered_at FROM (
            SELECT l.sender, l.accepted_at, l.pk, d.delivered_at, 0 AS how
            FROM deliveries nd
            JOIN messages l ON l.sender = nd.recipient AND l.message_id = n.ref_to_message_id
            JOIN deliveries d ON d.message_pk = l.pk AND d.recipient = n.sender
            WHERE nd.message_pk = n.pk AND l.message_type = 'letter'
            UNION ALL
            SELECT l.sender, l.accepted_at, l.pk, d.delivered_at, 1
            FROM deliveries nd
            JOIN messages l ON l.sender = nd.recipient AND l.letter_number = n.letter_number
                           AND l.letter_date = n.letter_date AND l.accepted_at <= n.accepted_at
            JOIN deliveries d ON d.message_pk = l.pk AND d.recipient = n.sender
            WHERE nd.message_pk = n.pk AND l.message_type = 'letter' AND n.ref_to_message_id IS NULL
        ) x ORDER BY x.how, x.accepted_at DESC, x.pk DESC LIMIT 1
    ) l
    WHERE n.message_type = 'notifier' AND n.notifier_kind IN ('received', 'accepted')
), ended AS (
    SELECT ev.kind, ev.at, m.sender, d.recipient, extract(epoch FROM ev.at - m.accepted_at) AS seconds
    FROM ev JOIN deliveries d ON d.id = ev.delivery_id JOIN messages m ON m.pk = d.message_pk
    WHERE ev.kind IN ('delivery.delivered', 'delivery.dead') AND m.message_type = 'letter'
), facts (side, agency, at, letters, delivered, dead, answered, registered, metric, seconds) AS (
    SELECT 's'::"char", a.sender, a.accepted_at, 1, 0, 0, 0, 0, NULL::"char", NULL::double precision
    FROM accepted a WHERE a.message_type = 'letter'
    UNION ALL
    SELECT 'r', d.recipient, a.accepted_at, 1, 0, 0, 0, 0, NULL, NULL
    FROM accepted a JOIN deliveries d ON d.message_pk = a.pk WHERE a.message_type = 'letter'
    UNION ALL
    SELECT s.side, CASE s.side WHEN 's' THEN e.sender ELSE e.recipient END, e.at, 0,
           (e.kind = 'delivery.delivered')::int, (e.kind = 'delivery.dead')::int, 0, 0,
           CASE WHEN e.kind = 'delivery.delivered' THEN 'd'::"char" END, e.seconds
    FROM ended e CROSS JOIN (VALUES ('s'::"char"), ('r'::"char")) s (side)
    UNION ALL
    SELECT s.side, CASE s.side WHEN 's' THEN x.letter_sender ELSE x.answering END, x.at, 0, 0, 0,
           (x.notifier_kind = 'received')::int, (x.notifier_kind = 'accepted')::int,
           CASE x.notifier_kind WHEN 'received' THEN 'a'::"char" ELSE 'g'::"char" END, x.seconds
    FROM answers x CROSS JOIN (VALUES ('s'::"char"), ('r'::"char")) s (side)
), hourly AS (
    INSERT INTO stats_hourly AS h (side, agency, hour, letters, delivered, dead, answered, registered)
    SELECT side, agency, date_trunc('hour', at), sum(letters), sum(delivered), sum(dead), sum(answered),
           sum(registered)
    FROM facts GROUP BY 1, 2, 3
    ON CONFLICT (side, hour, agency) DO UPDATE
    SET letters = h.letters + EXCLUDED.letters, delivered = h.delivered + EXCLUDED.delivered,
        dead = h.dead + EXCLUDED.dead, answered = h.answered + EXCLUDED.answered,
        registered = h.registered + EXCLUDED.registered
), daily AS (
    INSERT INTO stats_daily AS h (side, agency, day, letters, delivered, dead, answered, registered)
    SELECT side, agency, (at AT TIME ZONE 'Asia/Bangkok')::date, sum(letters), sum(delivered), sum(dead),
           sum(answered), sum(registered)
    FROM facts GROUP BY 1, 2, 3
    ON CONFLICT (side, day, agency) DO UPDATE
    SET letters = h.letters + EXCLUDED.letters, delivered = h.delivered + EXCLUDED.delivered,
        dead = h.dead + EXCLUDED.dead, answered = h.answered + EXCLUDED.answered,
        registered = h.registered + EXCLUDED.registered
), latency AS (
    INSERT INTO stats_latency AS h (side, agency, day, metric, bucket, n)
    SELECT side, agency, (at AT TIME ZONE 'Asia/Bangkok')::date, metric, stats_bucket(seconds), count(*)
    FROM facts WHERE metric IS NOT NULL GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (side, metric, day, agency, bucket) DO UPDATE SET n = h.n + EXCLUDED.n
), refusals AS (
    INSERT INTO stats_refusals AS h (agency, hour, code, n)
    SELECT ev.actor, date_trunc('hour', ev.at), coalesce(ev.details ->> 'code', 'unknown'), count(*)
    FROM ev WHERE ev.kind = 'message.rejected' GROUP BY 1, 2, 3
    ON CONFLICT (hour, agency, code) DO UPDATE SET n = h.n + EXCLUDED.n
)
SELECT count(*)::integer FROM ev
$$;
