-- 0020: weekly and monthly rollups of closed periods beside the daily ones (gateway.storage.stats has
-- the design). A period of days is read as the fewest whole calendar months, ISO weeks (Monday to
-- Sunday) and single days that cover it exactly, so a 30-day page reads about 5 rows per agency and
-- series, not 30. A week or month is written once, from its days, when it has ended (stats_seal_spans,
-- run by the rollup job in its round's transaction, up to yesterday in Bangkok): the rollup job's
-- upserts per fact stay those of hours and days. A fact that comes after its week or month was sealed
-- (a backlog, a round that crossed midnight) is added to the span as well, by stats_roll.

-- Every week and month that ends on or before this day is in stats_spans and stats_latency_spans
-- (NULL: none yet).
ALTER TABLE stats_watermark ADD COLUMN spans_through date;

-- One row per span ('w': the ISO week that starts on day `first`, a Monday; 'm': the calendar month
-- that starts on day `first`), side and agency: the sums of stats_daily over the span's days.
CREATE TABLE stats_spans (
    span       "char" NOT NULL CHECK (span IN ('w', 'm')),
    side       "char" NOT NULL CHECK (side IN ('s', 'r')),
    agency     text NOT NULL,
    first      date NOT NULL,
    letters    integer NOT NULL DEFAULT 0,
    delivered  integer NOT NULL DEFAULT 0,
    dead       integer NOT NULL DEFAULT 0,
    answered   integer NOT NULL DEFAULT 0,
    registered integer NOT NULL DEFAULT 0,
    PRIMARY KEY (span, side, first, agency)
);
CREATE INDEX stats_spans_agency ON stats_spans (agency, side, span, first);

-- The latency histograms (stats_latency) per span: the sums over the span's days.
CREATE TABLE stats_latency_spans (
    span   "char" NOT NULL CHECK (span IN ('w', 'm')),
    side   "char" NOT NULL,
    agency text NOT NULL,
    first  date NOT NULL,
    metric "char" NOT NULL CHECK (metric IN ('d', 'a', 'g')),
    bucket smallint NOT NULL CHECK (bucket BETWEEN 0 AND 47),
    n      integer NOT NULL,
    PRIMARY KEY (span, side, metric, first, agency, bucket)
);
CREATE INDEX stats_latency_spans_agency ON stats_latency_spans (agency, side, metric, span, first);

-- The last day of the span of kind `span` ('w', 'm') that starts on `first`.
CREATE FUNCTION stats_span_end(span "char", first date) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE span WHEN 'w' THEN first + 6 ELSE (first + interval '1 month')::date - 1 END
$$;

-- Seal every week and month that ended after the last sealed day and on or before p_through: write its
-- sums from its days, once, and move spans_through. Returns the span rows written.
CREATE FUNCTION stats_seal_spans(p_through date) RETURNS integer
LANGUAGE sql VOLATILE AS $$
WITH wm AS (
    SELECT spans_through AS old FROM stats_watermark
), counts AS (
    INSERT INTO stats_spans (span, side, agency, first, letters, delivered, dead, answered, registered)
    SELECT x.span, x.side, x.agency, x.first, sum(x.letters), sum(x.delivered), sum(x.dead), sum(x.answered),
           sum(x.registered)
    FROM (SELECT s.span, d.side, d.agency,
                 date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END, d.day::timestamp)::date AS first,
                 d.letters, d.delivered, d.dead, d.answered, d.registered
          FROM stats_daily d CROSS JOIN (VALUES ('w'::"char"), ('m'::"char")) s (span), wm
          -- (a span that ends after the old bound starts at most 30 days before it)
          WHERE d.day <= p_through AND (wm.old IS NULL OR d.day > wm.old - 31)) x, wm
    WHERE stats_span_end(x.span, x.first) <= p_through
      AND (wm.old IS NULL OR stats_span_end(x.span, x.first) > wm.old)
    GROUP BY 1, 2, 3, 4
    RETURNING 1
), latency AS (
    INSERT INTO stats_latency_spans (span, side, agency, first, metric, bucket, n)
    SELECT x.span, x.side, x.agency, x.first, x.metric, x.bucket, sum(x.n)
    FROM (SELECT s.span, l.side, l.agency,
                 date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END, l.day::timestamp)::date AS first,
                 l.metric, l.bucket, l.n
          FROM stats_latency l CROSS JOIN (VALUES ('w'::"char"), ('m'::"char")) s (span), wm
          WHERE l.day <= p_through AND (wm.old IS NULL OR l.day > wm.old - 31)) x, wm
    WHERE stats_span_end(x.span, x.first) <= p_through
      AND (wm.old IS NULL OR stats_span_end(x.span, x.first) > wm.old)
    GROUP BY 1, 2, 3, 4, 5, 6
    RETURNING 1
), moved AS (
    UPDATE stats_watermark SET spans_through = p_through WHERE spans_through IS NULL OR spans_through < p_through
)
SELECT ((SELECT count(*) FROM counts) + (SELECT count(*) FROM latency))::integer
$$;

-- Add the audit events with p_from < seq <= p_to to the rollups: as 0013's, and a fact of a sealed
-- week or month to its span.
CREATE OR REPLACE FUNCTION stats_roll(p_from bigint, p_to bigint) RETURNS integer
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
), spanned AS (
    -- (0020) a fact whose week or month is sealed already (stats_seal_spans): added to that span too
    SELECT x.* FROM (
        SELECT s.span, f.side, f.agency, date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END,
                                                    f.at AT TIME ZONE 'Asia/Bangkok')::date AS first,
               f.letters, f.delivered, f.dead, f.answered, f.registered, f.metric, f.seconds
        FROM facts f CROSS JOIN (VALUES ('w'::"char"), ('m'::"char")) s (span)
    ) x, stats_watermark wm
    WHERE stats_span_end(x.span, x.first) <= wm.spans_through
), spans AS (
    INSERT INTO stats_spans AS h (span, side, agency, first, letters, delivered, dead, answered, registered)
    SELECT span, side, agency, first, sum(letters), sum(delivered), sum(dead), sum(answered), sum(registered)
    FROM spanned GROUP BY 1, 2, 3, 4
    ON CONFLICT (span, side, first, agency) DO UPDATE
    SET letters = h.letters + EXCLUDED.letters, delivered = h.delivered + EXCLUDED.delivered,
        dead = h.dead + EXCLUDED.dead, answered = h.answered + EXCLUDED.answered,
        registered = h.registered + EXCLUDED.registered
), latency_spans AS (
    INSERT INTO stats_latency_spans AS h (span, side, agency, first, metric, bucket, n)
    SELECT span, side, agency, first, metric, stats_bucket(seconds), count(*)
    FROM spanned WHERE metric IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (span, side, metric, first, agency, bucket) DO UPDATE SET n = h.n + EXCLUDED.n
), refusals AS (
    INSERT INTO stats_refusals AS h (agency, hour, code, n)
    SELECT ev.actor, date_trunc('hour', ev.at), coalesce(ev.details ->> 'code', 'unknown'), count(*)
    FROM ev WHERE ev.kind = 'message.rejected' GROUP BY 1, 2, 3
    ON CONFLICT (hour, agency, code) DO UPDATE SET n = h.n + EXCLUDED.n
)
SELECT count(*)::integer FROM ev
$$;
