-- Shared state for the Prometheus scrape (gateway.storage.gauges): a few cheap reads, whichever
-- worker answers. $1 is the gateway clock's now. Ages are seconds as float8.

-- name: gauges_queues
-- Per open state: the $2 destinations whose oldest delivery is oldest (their depth and age), with the
-- state's totals over every destination (deliveries, destinations, oldest) on each row. One pass over the
-- open deliveries (partial index deliveries_open); the cap keeps a national backlog's scrape small.
SELECT recipient, status, n, oldest_s, total, destinations
FROM (SELECT recipient, status::text AS status, count(*) AS n,
             greatest(extract(epoch FROM ($1::timestamptz - min(created_at))), 0)::float8 AS oldest_s,
             sum(count(*)) OVER (PARTITION BY status)::bigint AS total,
             count(*) OVER (PARTITION BY status) AS destinations,
             row_number() OVER (PARTITION BY status ORDER BY min(created_at), recipient) AS rank
      FROM deliveries
      WHERE status IN ('queued', 'sending', 'retry_wait', 'inbox', 'dead')
      GROUP BY recipient, status) x
WHERE rank <= $2;

-- name: gauges_destinations
-- Failing destinations only (a handful on a bad day; closed circuits are not listed).
SELECT agency, consecutive_failures,
       coalesce(backoff_until > $1::timestamptz, false) AS circuit_open,
       greatest(extract(epoch FROM ($1::timestamptz - coalesce(failing_since, updated_at))), 0)::float8
           AS failing_s
FROM destinations WHERE consecutive_failures > 0;

-- name: gauges_audit
-- Events after the chain head: how many (capped, so a stopped sealer does not make scrapes slow)
-- and the age of the first one (primary key order).
SELECT (SELECT count(*) FROM (SELECT 1 FROM audit_events e
                              WHERE e.seq > (SELECT seq FROM audit_chain_head) LIMIT 1000000) x) AS unsealed,
       coalesce((SELECT greatest(extract(epoch FROM ($1::timestamptz - e.at)), 0)::float8 FROM audit_events e
                 WHERE e.seq > (SELECT seq FROM audit_chain_head) ORDER BY e.seq LIMIT 1), 0)::float8 AS lag_s;

-- name: gauges_evidence
-- Letters held in validation-pending (and the oldest one's age), and seals/receipts not yet time-stamped
-- (capped like the audit count; the age of the first by primary key order).
SELECT (SELECT count(*) FROM validation_pending) AS validation_pending,
       coalesce((SELECT greatest(extract(epoch FROM ($1::timestamptz - min(since))), 0)::float8
                 FROM validation_pending), 0)::float8 AS validation_oldest_s,
       (SELECT count(*) FROM (SELECT 1 FROM audit_events e
                              WHERE e.seq > (SELECT stamped_seq FROM er_state)
                                AND e.kind IN ('message.accepted', 'delivery.delivered') LIMIT 1000000) x)
           AS unstamped,
       coalesce((SELECT greatest(extract(epoch FROM ($1::timestamptz - e.at)), 0)::float8 FROM audit_events e
                 WHERE e.seq > (SELECT stamped_seq FROM er_state)
                   AND e.kind IN ('message.accepted', 'delivery.delivered')
                 ORDER BY e.seq LIMIT 1), 0)::float8 AS unstamped_oldest_s;
