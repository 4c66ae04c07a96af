-- Time-stamps over seals and receipts and their RFC 4998 renewal (gateway.audit.stamping, .renewal, .ers).

-- name: er_lock
SELECT pg_try_advisory_lock(6515392107730944016);

-- name: er_unlock
SELECT pg_advisory_unlock(6515392107730944016);

-- name: er_state
SELECT stamped_seq, renew_alg, renew_item FROM er_state;

-- name: er_chained_head
SELECT seq FROM audit_chain_head;

-- name: er_unstamped
-- Seals and receipts whose audit event is chained after the watermark, in chain order. The audit chain is
-- final (the sealer's fence), so a watermark over it never skips a letter committed late.
SELECT c.seq, e.kind AS event, e.message_pk, r.pk AS receipt_pk,
       CASE WHEN e.kind = 'message.accepted' THEN forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts) END AS forwarded,
       CASE WHEN e.kind = 'message.accepted'
            THEN message_receipt(m.receipt, m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts) END AS receipt,
       r.receipt AS delivery_receipt
FROM audit_chain c
JOIN audit_events e ON e.seq = c.seq
LEFT JOIN messages m ON e.kind = 'message.accepted' AND m.pk = e.message_pk
LEFT JOIN receipts_full r ON e.kind = 'delivery.delivered' AND r.delivery_id = e.delivery_id
WHERE c.seq > $1 AND c.seq <= $2 AND e.kind IN ('message.accepted', 'delivery.delivered')
ORDER BY c.seq
LIMIT $3;

-- name: er_pending
-- Seals and receipts not time-stamped yet (chained or not), and the oldest one's time.
SELECT count(*) AS pending, min(e.at) AS oldest
FROM audit_events e
WHERE e.kind IN ('message.accepted', 'delivery.delivered') AND e.seq > (SELECT stamped_seq FROM er_state);

-- name: er_stamp_insert
INSERT INTO er_stamps (purpose, alg, root, leaves, token, gen_time, tsa_not_after, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id;

-- name: er_items_stamped
-- New items, each with its first chain (chain 0) under stamp $6.
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bytea[]) AS t(message_pk, kind, receipt_pk, path)
), ins AS (
    INSERT INTO er_items (message_pk, kind, receipt_pk, alg)
    SELECT message_pk, kind, receipt_pk, $5 FROM input
    ON CONFLICT DO NOTHING
    RETURNING id, message_pk, kind, receipt_pk
)
INSERT INTO er_item_chains (item_id, chain, stamp_id, path)
SELECT ins.id, 0, $6, input.path
FROM ins JOIN input ON input.message_pk = ins.message_pk AND input.kind = ins.kind
                   AND input.receipt_pk IS NOT DISTINCT FROM ins.receipt_pk;

-- name: er_watermark
UPDATE er_state SET stamped_seq = $2, updated_at = $3 WHERE stamped_seq = $1;

-- name: er_item_chains_for
SELECT item_id, chain, stamp_id, path FROM er_item_chains WHERE item_id = ANY($1::bigint[]) ORDER BY item_id, chain;

-- name: er_stamps_by_id
SELECT id, alg, token FROM er_stamps WHERE id = ANY($1::bigint[]);

-- name: er_renewals_from
-- Every time-stamp renewal reachable from these stamps (renewals of renewals ...), with its token.
WITH RECURSIVE r AS (
    SELECT prev_id, stamp_id, path FROM er_stamp_renewals WHERE prev_id = ANY($1::bigint[])
    UNION
    SELECT n.prev_id, n.stamp_id, n.path FROM er_stamp_renewals n JOIN r ON n.prev_id = r.stamp_id
)
SELECT r.prev_id, r.stamp_id, r.path, s.alg, s.token FROM r JOIN er_stamps s ON s.id = r.stamp_id;

-- name: er_items_of_message
-- The time-stamped objects of a letter (its seal, its submission receipt, its delivery receipts) and their
-- bytes, by sender and message id (the unique key's index).
SELECT i.id, i.kind, m.pk AS message_pk, m.sender, m.message_id, i.receipt_pk,
       CASE i.kind WHEN 'seal' THEN forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts)
                   WHEN 'receipt' THEN message_receipt(m.receipt, m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts)
                   ELSE r.receipt END AS data
FROM messages m
JOIN er_items i ON i.message_pk = m.pk
LEFT JOIN receipts_full r ON r.pk = i.receipt_pk
WHERE m.sender = $2 AND m.message_id = $1
ORDER BY m.pk, i.id;

-- name: er_items_of_message_id
-- The same by message id alone, for every sender that used it (no index on message_id alone: a scan).
SELECT i.id, i.kind, m.pk AS message_pk, m.sender, m.message_id, i.receipt_pk,
       CASE i.kind WHEN 'seal' THEN forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts)
                   WHEN 'receipt' THEN message_receipt(m.receipt, m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts)
                   ELSE r.receipt END AS data
FROM messages m
JOIN er_items i ON i.message_pk = m.pk
LEFT JOIN receipts_full r ON r.pk = i.receipt_pk
WHERE m.message_id = $1
ORDER BY m.pk, i.id;

-- name: er_items_to_rehash
-- The next items after $2 whose latest chain uses one of the weak algorithms $1, with their bytes.
SELECT i.id, i.chains,
       CASE i.kind WHEN 'seal' THEN forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts)
                   WHEN 'receipt' THEN message_receipt(m.receipt, m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts)
                   ELSE r.receipt END AS data
FROM er_items i
JOIN messages m ON m.pk = i.message_pk
LEFT JOIN receipts_full r ON r.pk = i.receipt_pk
WHERE i.alg = ANY($1::text[]) AND i.id > $2
ORDER BY i.id
LIMIT $3;

-- name: er_rehash_apply
-- A hash-tree renewal of a chunk: each item's new chain under stamp $4, once (a chain number is taken once).
WITH ch AS (
    INSERT INTO er_item_chains (item_id, chain, stamp_id, path)
    SELECT item_id, chain, $4, path FROM unnest($1::bigint[], $2::integer[], $3::bytea[]) AS t(item_id, chain, path)
    ON CONFLICT DO NOTHING
    RETURNING item_id, chain
)
UPDATE er_items i SET chains = ch.chain + 1, alg = $5
FROM ch WHERE i.id = ch.item_id;

-- name: er_renew_progress
UPDATE er_state SET renew_alg = $1, renew_item = $2, updated_at = $3;

-- name: er_weak_items_left
SELECT count(*) FROM er_items WHERE alg = ANY($1::text[]);

-- name: er_weak_items_after
SELECT count(*) FROM er_items WHERE alg = ANY($1::text[]) AND id > $2;

-- name: er_supersede
-- Once no item's latest chain uses a weak algorithm, its stamps are never renewed again.
UPDATE er_stamps SET superseded = true
WHERE alg = ANY($1::text[]) AND NOT superseded
  AND NOT EXISTS (SELECT 1 FROM er_items WHERE alg = ANY($1::text[]));

-- name: er_tips_due
-- Chain tips (stamps not renewed yet) whose TSA certificate ends by $1, in algorithms not declared weak.
SELECT s.id, s.alg, s.token
FROM er_stamps s
WHERE NOT s.superseded AND s.tsa_not_after <= $1 AND s.alg <> ALL($2::text[])
  AND NOT EXISTS (SELECT 1 FROM er_stamp_renewals r WHERE r.prev_id = s.id)
ORDER BY s.id
LIMIT $3;

-- name: er_renewals_insert
INSERT INTO er_stamp_renewals (prev_id, stamp_id, path)
SELECT prev_id, $2, path FROM unnest($1::bigint[], $3::bytea[]) AS t(prev_id, path)
ON CONFLICT DO NOTHING;

-- name: er_path_bytes
-- Storage the paths take: per item (chains) and shared (renewals), and the items.
SELECT (SELECT coalesce(sum(octet_length(path)), 0) FROM er_item_chains) AS item_paths,
       (SELECT coalesce(sum(octet_length(path)), 0) FROM er_stamp_renewals) AS renewal_paths,
       (SELECT count(*) FROM er_items) AS items,
       (SELECT count(*) FROM er_stamps) AS stamps;

-- name: er_renew_lock
SELECT pg_try_advisory_lock(6515392107730944017);

-- name: er_renew_unlock
SELECT pg_advisory_unlock(6515392107730944017);
