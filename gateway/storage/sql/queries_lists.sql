-- Distribution lists (gateway.storage.lists; tables of migration 0010).

-- name: upsert_lists
-- Seed or update lists from arrays (one statement): $1 names, $2 Thai names, $3 rules (JSON text or
-- NULL), $4 members (JSON array text or NULL), $5 e-CMS codes, $6 when.
INSERT INTO distribution_lists (name, name_th, rule, members, ecms_code, updated_at)
SELECT l.name, l.name_th, l.rule::jsonb,
       CASE WHEN l.members IS NULL THEN NULL
            ELSE ARRAY(SELECT jsonb_array_elements_text(l.members::jsonb)) END,
       l.ecms_code, $6
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS l (name, name_th, rule, members, ecms_code)
ON CONFLICT (name) DO UPDATE SET
    name_th = EXCLUDED.name_th, rule = EXCLUDED.rule, members = EXCLUDED.members,
    ecms_code = EXCLUDED.ecms_code, updated_at = EXCLUDED.updated_at
WHERE (distribution_lists.name_th, distribution_lists.rule, distribution_lists.members, distribution_lists.ecms_code)
      IS DISTINCT FROM (EXCLUDED.name_th, EXCLUDED.rule, EXCLUDED.members, EXCLUDED.ecms_code);

-- name: get_lists
-- The lists that exist among $1, each a name or an e-CMS pseudo-organization code (99xxx).
SELECT name, name_th, rule::text AS rule, members, ecms_code FROM distribution_lists
WHERE name = ANY ($1::text[]) OR ecms_code = ANY ($1::text[]);

-- name: get_lists_by_ecms_code
-- The lists behind e-CMS pseudo-organization codes ($1 codes).
SELECT name, name_th, rule::text AS rule, members, ecms_code FROM distribution_lists
WHERE ecms_code = ANY ($1::text[]);

-- name: all_lists
SELECT name, name_th, rule::text AS rule, members, ecms_code FROM distribution_lists ORDER BY name;

-- name: insert_list_expansions
-- A letter's frozen expansions: $1 message pk, $2 list names, $3 directory version, $4 counts, $5 digests.
INSERT INTO list_expansions (message_pk, list_name, directory_version, member_count, members_sha256)
SELECT $1, e.name, $3, e.n, e.digest FROM unnest($2::text[], $4::integer[], $5::text[]) AS e (name, n, digest);

-- name: list_expansions
SELECT list_name, directory_version, member_count, members_sha256 FROM list_expansions
WHERE message_pk = $1 ORDER BY list_name;

-- name: delivery_progress
-- How a letter's deliveries stand: count per status.
SELECT status::text AS status, count(*)::integer AS n FROM deliveries WHERE message_pk = $1 GROUP BY status;

-- name: recipients_page
-- One page of a letter's deliveries by recipient code, after $2 (NULL: from the first), at most $3.
SELECT recipient, status::text AS status, attempts, last_error, delivered_at, id FROM deliveries
WHERE message_pk = $1 AND ($2::text IS NULL OR recipient > $2)
ORDER BY recipient LIMIT $3;

-- name: registry_answers
-- How the recipients' registries answered a letter: count per latest answer (received, accepted,
-- rejected, invalid, ...; the rule of latest_registry_answer). Recipients with no answer are not counted.
SELECT ans.notifier_kind AS kind, count(*)::integer AS n
FROM deliveries d
CROSS JOIN LATERAL latest_registry_answer(d.message_pk, d.recipient) ans
WHERE d.message_pk = $1 AND d.status <> 'withdrawn'
GROUP BY ans.notifier_kind;
