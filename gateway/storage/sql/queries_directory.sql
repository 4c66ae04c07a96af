-- Named queries of the agency directory (gateway.storage.directory).

-- name: directory_lock
SELECT pg_advisory_xact_lock(6510110501);

-- name: directory_current_version
SELECT coalesce(max(version), 0) FROM directory_versions;

-- name: directory_version_row
SELECT version, at, actor, reason, sha256, source_sha256, agencies, changes
FROM directory_versions WHERE version = $1;

-- name: directory_last_source
SELECT source_sha256 FROM directory_versions WHERE source_sha256 IS NOT NULL ORDER BY version DESC LIMIT 1;

-- name: directory_entries
SELECT code, entry FROM agencies ORDER BY code;

-- name: directory_entries_at
-- The directory as it was at version $1: each agency's latest history row at or before it.
SELECT code, after AS entry FROM (
    SELECT DISTINCT ON (code) code, after FROM agency_history WHERE version <= $1
    ORDER BY code, version DESC) h
WHERE after IS NOT NULL ORDER BY code;

-- name: directory_insert_version
INSERT INTO directory_versions (version, at, actor, reason, sha256, source_sha256, agencies, changes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: directory_insert_history
INSERT INTO agency_history (version, code, before, after)
SELECT $1, c, b, a FROM unnest($2::text[], $3::jsonb[], $4::jsonb[]) AS u (c, b, a);

-- name: directory_delete
DELETE FROM agencies WHERE code = ANY ($1::text[]);

-- name: directory_upsert
INSERT INTO agencies (code, entry, version, name_th, name_en, kind, parent, province)
SELECT c, e, $1, e->>'name_th', e->>'name_en', e->>'kind', e->>'parent', e->>'province'
FROM unnest($2::text[], $3::jsonb[]) AS u (c, e)
ON CONFLICT (code) DO UPDATE SET entry = excluded.entry, version = excluded.version, name_th = excluded.name_th,
    name_en = excluded.name_en, kind = excluded.kind, parent = excluded.parent, province = excluded.province;

-- name: directory_history_of
SELECT h.version, v.at, v.actor, v.reason, h.before, h.after
FROM agency_history h JOIN directory_versions v USING (version)
WHERE h.code = $1 ORDER BY h.version DESC LIMIT $2;

-- name: directory_versions_list
SELECT version, at, actor, reason, sha256, agencies, changes FROM directory_versions
ORDER BY version DESC LIMIT $1;

-- name: directory_version_sha
SELECT sha256 FROM directory_versions WHERE version = $1;

-- name: directory_route_changes
-- Agencies whose route changed in versions ($1, $2], with who changed it, when and why.
SELECT h.version, h.code, h.before AS before_entry, h.after AS after_entry, v.at, v.actor, v.reason
FROM agency_history h JOIN directory_versions v USING (version)
WHERE h.version > $1 AND h.version <= $2 AND h.before IS NOT NULL AND h.after IS NOT NULL
  AND h.before->'route' IS DISTINCT FROM h.after->'route'
ORDER BY h.version, h.code;

-- name: insert_route_notice
-- A route-change notice from the gateway ($1) to one agency, over the route $11 (pinned: the old
-- route; NULL: the route in force). Idempotent on (sender, message_id): every gateway process may
-- try to send the notices of a version; one succeeds. Accepted and audited in one statement.
WITH m AS (
    INSERT INTO messages (sender, message_id, message_type, subject, speed, secrecy, channel, received_sha256,
                          received, forwarded, receipt, accepted_at)
    VALUES ($1, $2, 'letter', $3, 'normal', 'normal', 'gateway', $4, $5, $6, '', $7)
    ON CONFLICT (sender, message_id) DO NOTHING
    RETURNING pk
), d AS (
    INSERT INTO deliveries (id, message_pk, recipient, route, status, next_attempt_at, created_at, expires_at,
                            pinned_route)
    SELECT $8, m.pk, $9, $10, $12::delivery_status, $7, $7, $13, $11 FROM m
)
INSERT INTO audit_events (at, actor, kind, message_pk, details)
SELECT $7, $1, 'message.accepted', m.pk, $14::jsonb FROM m
RETURNING message_pk;
