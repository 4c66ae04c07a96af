-- Tamper-evident audit log (see gateway/audit/__init__.py for the design),
-- people who use the console (users), API credentials for staff roles, and the
-- indexes the auditor and console queries need.

-- Every audit event records the transaction that wrote it. The sequence number
-- is taken by audit_next_seq(), which assigns the transaction id FIRST and then
-- calls nextval: so any transaction holding a sequence number already has an
-- xid, and the sealer's fence (a sequence value read before the list of running
-- xids) is sound.
CREATE SEQUENCE audit_events_seq_gen AS bigint;

CREATE FUNCTION audit_next_seq() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN nextval('audit_events_seq_gen');
END $$;

ALTER TABLE audit_events ALTER COLUMN seq DROP IDENTITY;
SELECT setval('audit_events_seq_gen', coalesce((SELECT max(seq) FROM audit_events), 0) + 1, false);
ALTER TABLE audit_events ALTER COLUMN seq SET DEFAULT audit_next_seq();
ALTER SEQUENCE audit_events_seq_gen OWNED BY audit_events.seq;
ALTER TABLE audit_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX audit_events_at ON audit_events (at, seq);
CREATE INDEX audit_events_delivery ON audit_events (delivery_id) WHERE delivery_id IS NOT NULL;

-- The chain: one row per sealed event, written only by the sealer.
-- hash = SHA-256(hash of prev_seq || SHA-256(canonical bytes of the event)).
CREATE TABLE audit_chain (
    seq       bigint PRIMARY KEY,
    prev_seq  bigint NOT NULL,
    leaf      bytea NOT NULL,
    hash      bytea NOT NULL,
    sealed_at timestamptz NOT NULL
);

-- The chain head and the sealer's fence; one row, touched only by the sealer
-- (under an advisory lock), never by the request path.
CREATE TABLE audit_chain_head (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq         bigint NOT NULL,
    hash        bytea NOT NULL,
    count       bigint NOT NULL,
    fence_seq   bigint,
    fence_xids  text[],
    updated_at  timestamptz NOT NULL
);
INSERT INTO audit_chain_head (seq, hash, count, updated_at)
VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, 0, now());

-- Signed checkpoints: payload is the exact signed bytes (canonical JSON).
CREATE TABLE audit_checkpoints (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq         bigint NOT NULL UNIQUE,
    hash        bytea NOT NULL,
    count       bigint NOT NULL,
    at          timestamptz NOT NULL,
    payload     bytea NOT NULL,
    signature   bytea NOT NULL,
    cert_sha256 text NOT NULL,
    tsa_token   bytea
);

-- Exported archive files; a range can be dropped from the database once exported.
CREATE TABLE audit_archives (
    first_seq   bigint PRIMARY KEY,
    last_seq    bigint NOT NULL UNIQUE,
    last_hash   bytea NOT NULL,
    count       bigint NOT NULL,
    file_name   text NOT NULL,
    sha256      bytea NOT NULL,
    exported_at timestamptz NOT NULL,
    dropped_at  timestamptz
);

-- People (console) and staff API tokens. Agency users belong to an agency.
CREATE TYPE user_role AS ENUM ('agency', 'operator', 'auditor', 'admin');

CREATE TABLE users (
    username      text PRIMARY KEY,
    password_hash text NOT NULL,
    role          user_role NOT NULL,
    agency        text,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT users_agency_role CHECK ((role = 'agency') = (agency IS NOT NULL))
);

CREATE TABLE api_tokens (
    token_sha256 bytea PRIMARY KEY,
    username     text NOT NULL REFERENCES users (username),
    label        text NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

-- Auditor and console queries: keyset pagination on (accepted_at, pk), by
-- sender, and substring search of Thai subjects and letter numbers (pg_trgm GIN).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_accepted_pk ON messages (accepted_at DESC, pk DESC);
CREATE INDEX messages_sender_accepted ON messages (sender, accepted_at DESC, pk DESC);
CREATE INDEX messages_subject_trgm ON messages USING gin (subject gin_trgm_ops);
CREATE INDEX messages_letter_number_trgm ON messages USING gin (letter_number gin_trgm_ops);
CREATE INDEX deliveries_recipient_created ON deliveries (recipient, created_at DESC);
CREATE INDEX messages_ref_to ON messages (ref_to_message_id) WHERE ref_to_message_id IS NOT NULL;
CREATE INDEX deliveries_open ON deliveries (recipient, status)
    WHERE status IN ('queued', 'sending', 'retry_wait', 'inbox', 'dead');
CREATE INDEX deliveries_dead_created ON deliveries (created_at DESC, id DESC) WHERE status = 'dead';
