-- Statistics and service levels (gateway.storage.stats): the rollup job and the pages' queries.

-- name: stats_lock
-- One rollup job at a time across every gateway process; taken without an xid of its own.
SELECT pg_try_advisory_xact_lock(6515392107730944013);

-- name: stats_watermark
SELECT seq, fence_seq, fence_xids, events, updated_at, spans_through FROM stats_watermark;

-- name: stats_custom_plans
-- For the rest of the pages' read-only transaction: every statement planned for its own arguments
-- (gateway.storage.stats.reading), and the last day whose week and month are written.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true), spans_through FROM stats_watermark;

-- name: stats_seal_spans
SELECT stats_seal_spans($1);

-- name: stats_watermark_update
UPDATE stats_watermark SET seq = $1, fence_seq = $2, fence_xids = $3::text[], events = events + $4,
                           updated_at = $5;

-- name: stats_roll
SELECT stats_roll($1, $2);

-- name: stats_subtree
SELECT array_agg(code ORDER BY code) FROM stats_subtree($1);

-- name: stats_province
SELECT array_agg(code ORDER BY code) FROM agencies WHERE province = $1;

-- name: stats_volumes_daily
-- $1 side, $2 agencies (NULL: all), $3 first day, $4 last day
SELECT day AS at, sum(letters)::bigint AS letters, sum(delivered)::bigint AS delivered, sum(dead)::bigint AS dead,
       sum(answered)::bigint AS answered, sum(registered)::bigint AS registered
FROM stats_daily
WHERE side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2)) AND day BETWEEN $3 AND $4
GROUP BY day ORDER BY day;

-- name: stats_volumes_hourly
-- $1 side, $2 agencies (NULL: all), $3 from (inclusive), $4 until (exclusive)
SELECT hour AS at, sum(letters)::bigint AS letters, sum(delivered)::bigint AS delivered, sum(dead)::bigint AS dead,
       sum(answered)::bigint AS answered, sum(registered)::bigint AS registered
FROM stats_hourly
WHERE side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2)) AND hour >= $3 AND hour < $4
GROUP BY hour ORDER BY hour;

-- name: stats_agency_totals
-- Per agency over a period: the volumes. $1 side, $2 agencies or NULL, and the period as whole spans
-- (gateway.storage.stats.cover): $3 days, $4 weeks (their Mondays), $5 months (their first days).
WITH x AS (
    SELECT agency, letters, delivered, dead, answered, registered FROM stats_daily
    WHERE side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2)) AND day = ANY ($3::date[])
    UNION ALL
    SELECT agency, letters, delivered, dead, answered, registered FROM stats_spans
    WHERE span = 'w' AND side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2))
      AND first = ANY ($4::date[])
    UNION ALL
    SELECT agency, letters, delivered, dead, answered, registered FROM stats_spans
    WHERE span = 'm' AND side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2))
      AND first = ANY ($5::date[])
)
SELECT agency, sum(letters)::bigint AS letters, sum(delivered)::bigint AS delivered, sum(dead)::bigint AS dead,
       sum(answered)::bigint AS answered, sum(registered)::bigint AS registered
FROM x GROUP BY agency;

-- name: stats_levels
-- Per agency and metric, and for the whole scope (agency NULL), in one pass over the histograms: how
-- many durations, and the buckets of the 50th, 90th and 99th percentile (the first bucket whose running
-- count reaches the rank ceil(q * count), as gateway.storage.stats.percentile). $1 side, $2 agencies or
-- NULL, the period as whole spans: $3 days, $4 weeks, $5 months (as stats_agency_totals).
WITH x AS (
    SELECT agency, metric, bucket, n FROM stats_latency
    WHERE side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2)) AND day = ANY ($3::date[])
    UNION ALL
    SELECT agency, metric, bucket, n FROM stats_latency_spans
    WHERE span = 'w' AND side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2))
      AND first = ANY ($4::date[])
    UNION ALL
    SELECT agency, metric, bucket, n FROM stats_latency_spans
    WHERE span = 'm' AND side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2))
      AND first = ANY ($5::date[])
), h AS (
    SELECT agency, metric, bucket, sum(n)::integer AS n FROM x
    GROUP BY GROUPING SETS ((agency, metric, bucket), (metric, bucket))
), c AS (
    SELECT agency, metric, bucket, sum(n) OVER (PARTITION BY agency, metric ORDER BY bucket) AS running,
           sum(n) OVER (PARTITION BY agency, metric) AS total
    FROM h
)
SELECT agency, metric::text AS metric, max(total)::bigint AS count,
       min(bucket) FILTER (WHERE running >= (50 * total + 99) / 100) AS b50,
       min(bucket) FILTER (WHERE running >= (90 * total + 99) / 100) AS b90,
       min(bucket) FILTER (WHERE running >= (99 * total + 99) / 100) AS b99
FROM c GROUP BY agency, metric;

-- name: stats_service
-- The service-levels page in one statement: the percentiles of the whole scope (the row whose agency
-- is NULL) and of the agencies shown, ranked here so that only those travel: the $6 busiest (most
-- letters), the $7 slowest (p90 to delivery, ties by more deliveries, then code) and the first $6 whose
-- registry never answers (delivered, no answer). Every agency row carries agencies_total and
-- silent_total. Percentiles as stats_levels; $1 .. $5 as stats_levels.
WITH x AS (
    SELECT agency, metric, bucket, n FROM stats_latency
    WHERE side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2)) AND day = ANY ($3::date[])
    UNION ALL
    SELECT agency, metric, bucket, n FROM stats_latency_spans
    WHERE span = 'w' AND side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2))
      AND first = ANY ($4::date[])
    UNION ALL
    SELECT agency, metric, bucket, n FROM stats_latency_spans
    WHERE span = 'm' AND side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2))
      AND first = ANY ($5::date[])
), h AS (
    -- (counts in integers throughout: a sum of bigints would be numeric, several times slower)
    SELECT agency, metric, bucket, sum(n)::integer AS n FROM x
    GROUP BY GROUPING SETS ((agency, metric, bucket), (metric, bucket))
), c AS (
    SELECT agency, metric, bucket, sum(n) OVER (PARTITION BY agency, metric ORDER BY bucket) AS running,
           sum(n) OVER (PARTITION BY agency, metric) AS total
    FROM h
), lv AS (
    -- the rank ceil(q * total) as (q% * total + 99) / 100 in integers
    SELECT agency, metric, max(total) AS n,
           min(bucket) FILTER (WHERE running >= (50 * total + 99) / 100) AS b50,
           min(bucket) FILTER (WHERE running >= (90 * total + 99) / 100) AS b90,
           min(bucket) FILTER (WHERE running >= (99 * total + 99) / 100) AS b99
    FROM c GROUP BY agency, metric
), lp AS (
    SELECT agency,
           max(n) FILTER (WHERE metric = 'd')::bigint AS d_n, min(b50) FILTER (WHERE metric = 'd') AS d_b50,
           min(b90) FILTER (WHERE metric = 'd') AS d_b90, min(b99) FILTER (WHERE metric = 'd') AS d_b99,
           max(n) FILTER (WHERE metric = 'a')::bigint AS a_n, min(b50) FILTER (WHERE metric = 'a') AS a_b50,
           min(b90) FILTER (WHERE metric = 'a') AS a_b90, min(b99) FILTER (WHERE metric = 'a') AS a_b99,
           max(n) FILTER (WHERE metric = 'g')::bigint AS g_n, min(b50) FILTER (WHERE metric = 'g') AS g_b50,
           min(b90) FILTER (WHERE metric = 'g') AS g_b90, min(b99) FILTER (WHERE metric = 'g') AS g_b99
    FROM lv GROUP BY agency
), y AS (
    SELECT agency, letters, delivered, dead, answered, registered FROM stats_daily
    WHERE side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2)) AND day = ANY ($3::date[])
    UNION ALL
    SELECT agency, letters, delivered, dead, answered, registered FROM stats_spans
    WHERE span = 'w' AND side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2))
      AND first = ANY ($4::date[])
    UNION ALL
    SELECT agency, letters, delivered, dead, answered, registered FROM stats_spans
    WHERE span = 'm' AND side = $1::text::"char" AND ($2::text[] IS NULL OR agency = ANY ($2))
      AND first = ANY ($5::date[])
), t AS (
    SELECT agency, sum(letters)::bigint AS letters, sum(delivered)::bigint AS delivered, sum(dead)::bigint AS dead,
           sum(answered)::bigint AS answered, sum(registered)::bigint AS registered
    FROM y GROUP BY agency
), a AS MATERIALIZED (
    SELECT coalesce(t.agency, l.agency) AS agency, coalesce(t.letters, 0) AS letters,
           coalesce(t.delivered, 0) AS delivered, coalesce(t.dead, 0) AS dead, coalesce(t.answered, 0) AS answered,
           coalesce(t.registered, 0) AS registered, l.d_n, l.d_b50, l.d_b90, l.d_b99, l.a_n, l.a_b50, l.a_b90,
           l.a_b99, l.g_n, l.g_b50, l.g_b90, l.g_b99,
           coalesce(t.delivered, 0) > 0 AND coalesce(t.answered, 0) = 0 AND coalesce(t.registered, 0) = 0 AS silent
    FROM t FULL JOIN (SELECT * FROM lp WHERE agency IS NOT NULL) l ON l.agency = t.agency
), busy AS (
    SELECT agency, row_number() OVER (ORDER BY letters DESC, agency) AS n
    FROM (SELECT agency, letters FROM a ORDER BY letters DESC, agency LIMIT $6) x
), slow AS (
    -- the bucket's upper edge orders as the bucket, except the last two (both 2^23 s): one rank
    SELECT agency, row_number() OVER (ORDER BY least(d_b90, 46) DESC, delivered DESC, agency) AS n
    FROM (SELECT agency, d_b90, delivered FROM a WHERE d_b90 IS NOT NULL
          ORDER BY least(d_b90, 46) DESC, delivered DESC, agency LIMIT $7) x
), quiet AS (
    SELECT agency, row_number() OVER (ORDER BY agency) AS n
    FROM (SELECT agency FROM a WHERE silent ORDER BY agency LIMIT $6) x
)
SELECT a.agency, letters, delivered, dead, answered, registered, d_n, d_b50, d_b90, d_b99, a_n, a_b50, a_b90,
       a_b99, g_n, g_b50, g_b90, g_b99, (SELECT count(*) FROM a) AS agencies_total,
       (SELECT count(*) FROM a WHERE silent) AS silent_total,
       busy.n AS busy_rank, slow.n AS slow_rank, quiet.n AS silent_rank
FROM a LEFT JOIN busy ON busy.agency = a.agency LEFT JOIN slow ON slow.agency = a.agency
LEFT JOIN quiet ON quiet.agency = a.agency
WHERE busy.n IS NOT NULL OR slow.n IS NOT NULL OR quiet.n IS NOT NULL
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, d_n, d_b50, d_b90, d_b99, a_n, a_b50, a_b90, a_b99, g_n, g_b50, g_b90,
       g_b99, NULL, NULL, NULL, NULL, NULL
FROM lp WHERE agency IS NULL;

-- name: stats_refusals
-- Refused submissions per sending agency and code ($1 agencies or NULL, $2 from, $3 until).
SELECT agency, code, sum(n)::bigint AS n, min(hour) AS first, max(hour) AS last
FROM stats_refusals
WHERE ($1::text[] IS NULL OR agency = ANY ($1)) AND hour >= $2 AND hour < $3
GROUP BY agency, code ORDER BY n DESC, agency, code LIMIT $4;

-- name: stats_refusals_daily
SELECT (hour AT TIME ZONE 'Asia/Bangkok')::date AS day, sum(n)::bigint AS n
FROM stats_refusals
WHERE ($1::text[] IS NULL OR agency = ANY ($1)) AND hour >= $2 AND hour < $3
GROUP BY 1 ORDER BY 1;

-- name: stats_open_failures
-- Offices whose circuit is open or half-open, or that hold dead letters now: since when.
SELECT coalesce(dst.agency, dl.recipient) AS agency, dst.consecutive_failures, dst.failing_since,
       dst.backoff_until, dst.last_error, coalesce(dl.dead, 0) AS dead_now, dl.dead_since
FROM (SELECT agency, consecutive_failures, failing_since, backoff_until, last_error FROM destinations
      WHERE consecutive_failures > 0 OR backoff_until IS NOT NULL) dst
FULL JOIN (SELECT recipient, count(*) AS dead, min(created_at) AS dead_since FROM deliveries
           WHERE status = 'dead' GROUP BY recipient) dl ON dl.recipient = dst.agency
WHERE ($1::text[] IS NULL OR coalesce(dst.agency, dl.recipient) = ANY ($1))
ORDER BY coalesce(dst.failing_since, dl.dead_since) NULLS LAST, 1
LIMIT $2;

-- name: stats_scan_letters
-- The check of the rollups (tests, bench/console.py): letters per side, agency and Bangkok day,
-- and deliveries delivered and dead, counted from the letters and deliveries themselves.
WITH l AS (SELECT pk, sender, accepted_at FROM messages WHERE message_type = 'letter')
SELECT 's' AS side, sender AS agency, (accepted_at AT TIME ZONE 'Asia/Bangkok')::date AS day, count(*) AS letters
FROM l GROUP BY 1, 2, 3
UNION ALL
SELECT 'r', d.recipient, (l.accepted_at AT TIME ZONE 'Asia/Bangkok')::date, count(*)
FROM l JOIN deliveries d ON d.message_pk = l.pk GROUP BY 1, 2, 3;

-- name: stats_scan_deliveries
WITH x AS (
    SELECT m.sender, d.recipient, d.status,
           stats_bucket(extract(epoch FROM d.delivered_at - m.accepted_at)) AS bucket
    FROM messages m JOIN deliveries d ON d.message_pk = m.pk
    WHERE m.message_type = 'letter' AND d.status IN ('delivered', 'dead')
)
SELECT s.side, CASE s.side WHEN 's' THEN x.sender ELSE x.recipient END AS agency, x.status::text AS status,
       x.bucket, count(*) AS n
FROM x CROSS JOIN (VALUES ('s'), ('r')) s (side)
GROUP BY 1, 2, 3, 4;

-- name: stats_rolled_letters
SELECT side::text AS side, agency, day, sum(letters) AS letters FROM stats_daily WHERE letters > 0 GROUP BY 1, 2, 3;

-- name: stats_rolled_deliveries
SELECT side::text AS side, agency, 'delivered' AS status, bucket, sum(n) AS n FROM stats_latency WHERE metric = 'd'
GROUP BY 1, 2, 3, 4
UNION ALL
SELECT side::text, agency, 'dead', NULL::smallint, sum(dead) FROM stats_daily WHERE dead > 0 GROUP BY 1, 2;

-- name: stats_spans_differences
-- The check of the weekly and monthly spans against the days they sum (tests, bench/console.py): every
-- span, side and agency whose counts or histogram differ from the sums of its days (a span not sealed
-- yet has no row).
WITH d AS (
    SELECT s.span, d.side, d.agency,
           date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END, d.day::timestamp)::date AS first,
           sum(d.letters) AS letters, sum(d.delivered) AS delivered, sum(d.dead) AS dead,
           sum(d.answered) AS answered, sum(d.registered) AS registered
    FROM stats_daily d CROSS JOIN (VALUES ('w'::"char"), ('m'::"char")) s (span) GROUP BY 1, 2, 3, 4
    HAVING stats_span_end(s.span, date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END,
                                             d.day::timestamp)::date) <= (SELECT spans_through FROM stats_watermark)
), l AS (
    SELECT s.span, l.side, l.agency,
           date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END, l.day::timestamp)::date AS first,
           l.metric, l.bucket, sum(l.n) AS n
    FROM stats_latency l CROSS JOIN (VALUES ('w'::"char"), ('m'::"char")) s (span) GROUP BY 1, 2, 3, 4, 5, 6
    HAVING stats_span_end(s.span, date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END,
                                             l.day::timestamp)::date) <= (SELECT spans_through FROM stats_watermark)
)
SELECT 'counts' AS what, coalesce(d.span, p.span)::text AS span, coalesce(d.side, p.side)::text AS side,
       coalesce(d.agency, p.agency) AS agency, coalesce(d.first, p.first) AS first,
       format('%s/%s/%s/%s/%s', d.letters, d.delivered, d.dead, d.answered, d.registered) AS days,
       format('%s/%s/%s/%s/%s', p.letters, p.delivered, p.dead, p.answered, p.registered) AS span_rows
FROM d FULL JOIN stats_spans p USING (span, side, agency, first)
WHERE (d.letters, d.delivered, d.dead, d.answered, d.registered)
      IS DISTINCT FROM (p.letters, p.delivered, p.dead, p.answered, p.registered)
UNION ALL
SELECT 'latency ' || coalesce(l.metric, p.metric)::text || ' bucket ' || coalesce(l.bucket, p.bucket),
       coalesce(l.span, p.span)::text, coalesce(l.side, p.side)::text, coalesce(l.agency, p.agency),
       coalesce(l.first, p.first), l.n::text, p.n::text
FROM l FULL JOIN stats_latency_spans p USING (span, side, agency, first, metric, bucket)
WHERE l.n IS DISTINCT FROM p.n;
