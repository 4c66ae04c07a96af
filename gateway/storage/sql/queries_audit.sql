-- Audit chain, checkpoints, archives, users and the auditor/console queries.

-- name: audit_sealer_lock
SELECT pg_try_advisory_xact_lock(6515392107730944001);

-- name: audit_sealer_leader
-- The session lock whose holder runs the rounds in `gateway serve` ($1: gateway.audit.sealer.LEADER_LOCK).
SELECT pg_try_advisory_lock($1);

-- name: audit_head
SELECT seq, hash, count, fence_seq, fence_xids, updated_at FROM audit_chain_head;

-- name: audit_fence_ready
-- True when none of the transactions running when the fence was set still runs.
SELECT NOT EXISTS (SELECT 1 FROM pg_locks
                   WHERE locktype = 'transactionid' AND transactionid::text = ANY($1::text[]));

-- name: audit_seq_last
SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM audit_events_seq_gen;

-- name: audit_running_xids
-- The xid of every running transaction that holds an audit number: nextval() locks the sequence
-- (audit_events_seq_gen, in this database) before it hands a number out, and the lock is kept until
-- the transaction ends; audit_next_seq() gave that transaction its xid first (each transaction holds an
-- exclusive lock on its xid: the row of the same virtualtransaction). A transaction of another database,
-- or of this one that holds no number, cannot commit an event numbered at or below the value read
-- before this: it is not waited for. pg_locks, unlike pg_stat_activity, is read afresh on every call and
-- shows every role's transactions.
SELECT coalesce(array_agg(DISTINCT x.transactionid::text), '{}')
  FROM pg_locks s JOIN pg_locks x ON x.virtualtransaction = s.virtualtransaction
 WHERE s.locktype = 'relation' AND s.relation = 'audit_events_seq_gen'::regclass
   AND s.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND x.locktype = 'transactionid' AND x.mode = 'ExclusiveLock';

-- name: audit_fence_holders
-- The sessions whose transactions hold a fence (the sealer's warning names them for the operator).
SELECT a.pid, a.application_name, a.state, a.xact_start, left(a.query, 200) AS query
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.transactionid::text = ANY($1::text[])
 ORDER BY a.xact_start;

-- name: audit_unchained
SELECT seq, at, actor, kind, message_pk, delivery_id, details FROM audit_events
WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3;

-- name: audit_chain_insert
INSERT INTO audit_chain (seq, prev_seq, leaf, hash, sealed_at)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS c (seq, prev_seq, leaf, hash),
     (SELECT $5::timestamptz) t;

-- name: audit_head_update
UPDATE audit_chain_head SET seq = $1, hash = $2, count = $3, fence_seq = $4, fence_xids = $5::text[],
                            updated_at = $6;

-- name: audit_last_checkpoint
SELECT id, seq, hash, count, at, payload, signature, cert_sha256, tsa_token
FROM audit_checkpoints ORDER BY seq DESC LIMIT 1;

-- name: audit_checkpoint_insert
INSERT INTO audit_checkpoints (seq, hash, count, at, payload, signature, cert_sha256)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (seq) DO NOTHING
RETURNING id;

-- name: audit_checkpoint_tsa
UPDATE audit_checkpoints SET tsa_token = $2 WHERE id = $1;

-- name: audit_checkpoints_between
SELECT id, seq, hash, count, at, payload, signature, cert_sha256, tsa_token
FROM audit_checkpoints WHERE seq > $1 AND seq <= $2 ORDER BY seq;

-- name: audit_checkpoint_covering
-- The first checkpoint at or after a seq.
SELECT id, seq, hash, count, at, payload, signature, cert_sha256, tsa_token
FROM audit_checkpoints WHERE seq >= $1 ORDER BY seq LIMIT 1;

-- name: audit_chain_range
-- Events joined with their chain rows (left join: unchained events show up with a null hash).
SELECT e.seq, e.at, e.actor, e.kind, e.message_pk, e.delivery_id, e.details,
       c.seq AS chain_seq, c.prev_seq, c.leaf, c.hash
FROM audit_events e FULL JOIN audit_chain c ON c.seq = e.seq
WHERE coalesce(e.seq, c.seq) > $1 AND coalesce(e.seq, c.seq) <= $2
ORDER BY coalesce(e.seq, c.seq)
LIMIT $3;

-- name: audit_chain_row
SELECT seq, prev_seq, leaf, hash FROM audit_chain WHERE seq = $1;

-- name: audit_chain_last_before
SELECT seq, hash FROM audit_chain WHERE seq < $1 ORDER BY seq DESC LIMIT 1;

-- name: audit_chain_count_through
SELECT count(*) FROM audit_chain WHERE seq <= $1;

-- name: audit_last_archive
SELECT first_seq, last_seq, last_hash, count, file_name, sha256, exported_at, dropped_at
FROM audit_archives ORDER BY last_seq DESC LIMIT 1;

-- name: audit_archives
SELECT first_seq, last_seq, last_hash, count, file_name, sha256, exported_at, dropped_at
FROM audit_archives ORDER BY first_seq;

-- name: audit_archive_insert
INSERT INTO audit_archives (first_seq, last_seq, last_hash, count, file_name, sha256, exported_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (first_seq) DO NOTHING;

-- name: audit_archive_dropped
UPDATE audit_archives SET dropped_at = $2 WHERE last_seq <= $1 AND dropped_at IS NULL;

-- name: audit_drop_events
DELETE FROM audit_events WHERE seq <= $1;

-- name: audit_drop_chain
DELETE FROM audit_chain WHERE seq <= $1;

-- name: audit_unsealed_count
SELECT count(*) FROM audit_events WHERE seq > $1;

-- name: audit_events_for_message
SELECT e.seq, e.at, e.actor, e.kind, e.message_pk, e.delivery_id, e.details,
       c.prev_seq, c.leaf, c.hash
FROM audit_events e LEFT JOIN audit_chain c ON c.seq = e.seq
WHERE e.message_pk = $1 ORDER BY e.seq;

-- name: audit_leaves_between
SELECT seq, prev_seq, leaf, hash FROM audit_chain WHERE seq > $1 AND seq <= $2 ORDER BY seq;

-- name: audit_newest_through
SELECT max(at) FROM audit_events WHERE seq <= $1;
