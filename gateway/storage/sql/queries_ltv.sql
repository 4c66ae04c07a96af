-- Long-term validation material (gateway.storage.ltv, migration 0015).

-- name: ltv_put_items
-- Each item once: an item already stored is left as it is (same name, same bytes).
INSERT INTO validation_items (sha256, kind, data, stored_at)
SELECT s, k, d, $4 FROM unnest($1::bytea[], $2::text[], $3::bytea[]) AS t(s, k, d)
ON CONFLICT (sha256) DO NOTHING;

-- name: ltv_get_items
SELECT sha256, kind, data FROM validation_items WHERE sha256 = ANY($1::bytea[]);

-- name: ltv_trust_latest
SELECT version, sha256, at FROM trust_snapshots ORDER BY version DESC LIMIT 1;

-- name: ltv_trust_by_sha
SELECT version, sha256, at FROM trust_snapshots WHERE sha256 = $1;

-- name: ltv_trust_insert
INSERT INTO trust_snapshots (sha256, at) VALUES ($1, $2) RETURNING version;

-- name: ltv_pending_insert
INSERT INTO validation_pending (message_pk, deliveries, since, deadline, next_check_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_pk) DO NOTHING;

-- name: ltv_pending_due
-- Claimed row by row (any number of gateway processes), the letter's received bytes with it.
SELECT p.message_pk, p.deliveries, p.since, p.deadline, p.checks, m.sender, m.message_id, m.received,
       m.letter_number, m.letter_date, m.subject
FROM validation_pending p JOIN messages m ON m.pk = p.message_pk
WHERE p.next_check_at <= $1
ORDER BY p.next_check_at
LIMIT $2
FOR UPDATE OF p SKIP LOCKED;

-- name: ltv_pending_backoff
UPDATE validation_pending SET next_check_at = $2, checks = checks + 1, last_error = $3 WHERE message_pk = $1;

-- name: ltv_pending_delete
DELETE FROM validation_pending WHERE message_pk = $1;

-- name: ltv_pending_stats
SELECT count(*) AS pending, min(since) AS oldest FROM validation_pending;

-- name: ltv_release_deliveries
-- The check completed: the planned deliveries are created now (due at once, or after the
-- destination's backoff), in the transaction that removes the pending row.
INSERT INTO deliveries (id, message_pk, recipient, route, status, next_attempt_at, created_at, expires_at, bulk)
SELECT d.id, $1, d.recipient, d.route, d.status::delivery_status,
       greatest($2::timestamptz, coalesce(dest.backoff_until, $2::timestamptz)), $2, d.expires_at, d.bulk
FROM jsonb_to_recordset($3::jsonb) AS d(id uuid, recipient text, route text, status text,
                                           expires_at timestamptz, bulk boolean)
LEFT JOIN destinations dest ON dest.agency = d.recipient
ON CONFLICT DO NOTHING;

-- name: ltv_directory_entry_at
-- One agency's directory entry as it was at version $2 (its latest history row at or before it),
-- with that version's record.
SELECT v.version, v.at, v.actor, v.reason, v.sha256,
       (SELECT after FROM agency_history h WHERE h.code = $1 AND h.version <= $2
        ORDER BY h.version DESC LIMIT 1) AS entry
FROM directory_versions v WHERE v.version = $2;

-- name: ltv_validation_state
-- A letter's validation-pending state: held (since, deadline), or refused (the audit event's code).
SELECT p.since, p.deadline, p.checks,
       (SELECT details->>'code' FROM audit_events e WHERE e.message_pk = $1 AND e.kind = 'validation.refused'
        ORDER BY seq DESC LIMIT 1) AS refused
FROM (SELECT 1) one LEFT JOIN validation_pending p ON p.message_pk = $1;
