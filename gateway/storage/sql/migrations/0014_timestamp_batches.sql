-- RFC 3161 time-stamps over every seal and receipt, batched off the hot path (gateway.audit.stamping), kept
-- as the parts of RFC 4998 Evidence Records and renewed (gateway.audit.renewal); see gateway/audit/EVIDENCE.md.

-- One RFC 3161 token over the root of one hash tree. purpose: initial (seals and receipts), timestamp-renewal
-- (tips of chains whose TSA certificate nears its end), hash-tree-renewal (every object re-hashed with a new
-- algorithm). tsa_not_after: the TSA certificate's end, when this stamp must be renewed by. superseded: every
-- item it covered has a newer chain (a hash-tree renewal), so it is never renewed again.
CREATE TABLE er_stamps (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    purpose       text NOT NULL CHECK (purpose IN ('initial', 'timestamp-renewal', 'hash-tree-renewal')),
    alg           text NOT NULL,
    root          bytea NOT NULL,
    leaves        integer NOT NULL,
    token         bytea NOT NULL,
    gen_time      timestamptz NOT NULL,
    tsa_not_after timestamptz NOT NULL,
    superseded    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL
);
CREATE INDEX er_stamps_live ON er_stamps (tsa_not_after) WHERE NOT superseded;

-- Each time-stamped object: a message's seal (the forwarded envelope, messages.forwarded), its submission
-- receipt (messages.receipt), or a delivery receipt (receipts.receipt). chains: how many
-- ArchiveTimeStampChains its record has; alg: the hash algorithm of the latest one.
CREATE TABLE er_items (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_pk  bigint NOT NULL REFERENCES messages (pk),
    kind        text NOT NULL CHECK (kind IN ('seal', 'receipt', 'delivery-receipt')),
    receipt_pk  bigint REFERENCES receipts (pk),
    chains      integer NOT NULL DEFAULT 1,
    alg         text NOT NULL,
    CONSTRAINT er_items_receipt CHECK ((kind = 'delivery-receipt') = (receipt_pk IS NOT NULL))
);
CREATE UNIQUE INDEX er_items_object ON er_items (message_pk, kind, coalesce(receipt_pk, 0));
CREATE INDEX er_items_alg ON er_items (alg, id);

-- The first ArchiveTimeStamp of each chain of an item: its stamp and the item's reduced hash tree (DER of
-- SEQUENCE OF PartialHashtree; NULL when the tree had one leaf).
CREATE TABLE er_item_chains (
    item_id  bigint NOT NULL REFERENCES er_items (id),
    chain    integer NOT NULL,
    stamp_id bigint NOT NULL REFERENCES er_stamps (id),
    path     bytea,
    PRIMARY KEY (item_id, chain)
);
CREATE INDEX er_item_chains_stamp ON er_item_chains (stamp_id);

-- A time-stamp renewal: stamp_id renews prev_id (at most once), path is prev's reduced hash tree in the new
-- stamp's tree. Every item whose chain ends at prev_id shares it: no row per item.
CREATE TABLE er_stamp_renewals (
    prev_id  bigint PRIMARY KEY REFERENCES er_stamps (id),
    stamp_id bigint NOT NULL REFERENCES er_stamps (id),
    path     bytea
);

-- Watermarks. stamped_seq: every seal and receipt whose audit event is chained at or before this seq is
-- stamped. renew_alg/renew_item: a hash-tree renewal run in progress (its new algorithm) and the last item id
-- it has committed, so a killed run resumes where it stopped.
CREATE TABLE er_state (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    stamped_seq bigint NOT NULL,
    renew_alg   text,
    renew_item  bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);
INSERT INTO er_state (stamped_seq, renew_item, updated_at) VALUES (0, 0, now());
