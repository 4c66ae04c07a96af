-- 0010: distribution lists and each letter's frozen expansion of them.

-- Distribution lists (บัญชีแจกจ่าย), migration 0010: named groups of agencies a letter can be
-- addressed to (gateway.core.lists). Static (members) or by rule (jsonb: kind, province, ministry,
-- parent), never both. ecms_code: the pseudo-organization code (99xxx) e-CMS senders use for it.
CREATE TABLE distribution_lists (
    name       text PRIMARY KEY,
    name_th    text NOT NULL,
    rule       jsonb,
    members    text[],
    ecms_code  text UNIQUE,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT distribution_lists_rule_or_members CHECK ((rule IS NULL) <> (members IS NULL))
);

-- Each letter's frozen expansion of each list it named, written in the transaction that accepts it:
-- the directory version it was expanded against, how many members it had and the SHA-256 of their
-- sorted codes (gateway.core.lists.members_digest). The members themselves are the letter's
-- deliveries. No reference to distribution_lists: the record outlives a list's removal.
CREATE TABLE list_expansions (
    message_pk        bigint NOT NULL REFERENCES messages (pk),
    list_name         text NOT NULL,
    directory_version bigint NOT NULL,
    member_count      integer NOT NULL,
    members_sha256    text NOT NULL,
    PRIMARY KEY (message_pk, list_name)
);
