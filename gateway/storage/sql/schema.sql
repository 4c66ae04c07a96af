-- The whole schema as it stands after every migration. A test builds one database
-- from this file and one from the migrations and compares them.

CREATE TYPE message_type AS ENUM ('letter', 'notifier', 'receipt');

-- queued: due for a push/ecms/folder attempt; sending: leased by a dispatcher;
-- retry_wait: failed, due again at next_attempt_at; inbox: waiting in a pull
-- inbox for the agency to fetch and acknowledge; delivered: acknowledged;
-- dead: gave up (operator can requeue); withdrawn: the sender withdrew it.
CREATE TYPE delivery_status AS ENUM
    ('queued', 'sending', 'retry_wait', 'inbox', 'delivered', 'dead', 'withdrawn');

CREATE TABLE messages (
    pk                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender            text NOT NULL,
    message_id        text NOT NULL,
    message_type      message_type NOT NULL,
    conversation_id   text,
    ref_to_message_id text,
    letter_number     text,
    letter_date       date,
    subject           text,
    speed             text,
    secrecy           text,
    channel           text NOT NULL DEFAULT 'native',
    received_sha256   bytea NOT NULL,
    received          bytea NOT NULL,
    forwarded         bytea NOT NULL,
    evidence          bytea,
    receipt           bytea NOT NULL,
    accepted_at       timestamptz NOT NULL,
    CONSTRAINT messages_sender_message_id UNIQUE (sender, message_id)
);
CREATE INDEX messages_accepted_at ON messages (accepted_at);
CREATE INDEX messages_letter ON messages (letter_number, letter_date);

CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    message_pk      bigint NOT NULL REFERENCES messages (pk),
    recipient       text NOT NULL,
    route           text NOT NULL,
    status          delivery_status NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    -- When the delivery is next due. While 'sending' it is the lease's end, so a
    -- crashed dispatcher's claims come due again by themselves.
    next_attempt_at timestamptz NOT NULL,
    leased_by       text,
    last_error      text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    CONSTRAINT deliveries_message_recipient UNIQUE (message_pk, recipient)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('queued', 'sending', 'retry_wait');
CREATE INDEX deliveries_pending_by_recipient ON deliveries (recipient)
    WHERE status IN ('queued', 'retry_wait');
CREATE INDEX deliveries_inbox ON deliveries (recipient, created_at)
    WHERE status = 'inbox';
CREATE INDEX deliveries_dead ON deliveries (recipient) WHERE status = 'dead';

CREATE TABLE delivery_attempts (
    delivery_id uuid NOT NULL REFERENCES deliveries (id),
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    outcome     text NOT NULL,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE TABLE destinations (
    agency               text PRIMARY KEY,
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    backoff_until        timestamptz,
    last_error           text,
    updated_at           timestamptz NOT NULL
);

CREATE TABLE receipts (
    pk          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_pk  bigint NOT NULL REFERENCES messages (pk),
    delivery_id uuid REFERENCES deliveries (id),
    kind        text NOT NULL,
    receipt     bytea NOT NULL,
    ack         bytea,
    created_at  timestamptz NOT NULL
);
CREATE INDEX receipts_message ON receipts (message_pk);
CREATE UNIQUE INDEX receipts_delivery ON receipts (delivery_id) WHERE delivery_id IS NOT NULL;

CREATE TABLE audit_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    kind        text NOT NULL,
    message_pk  bigint,
    delivery_id uuid,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_message ON audit_events (message_pk) WHERE message_pk IS NOT NULL;

-- ---- 0002_audit_chain
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

-- 0003: business answers (notifiers) correlated to letters, and withdrawal.
ALTER TABLE messages ADD COLUMN notifier_kind text;
ALTER TABLE messages ADD COLUMN registry_number text;

-- 0004: the receiving stamp (ตรารับ).
CREATE TABLE stamped_letters (
    letter_pk       bigint NOT NULL REFERENCES messages (pk),
    recipient       text NOT NULL,
    registry_number text NOT NULL,
    notifier_pk     bigint REFERENCES messages (pk),
    pdf             bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (letter_pk, recipient)
);

-- 0005: files beside the envelope (multipart/related), stored in 1 MiB chunks.
ALTER TABLE messages ADD COLUMN parts integer NOT NULL DEFAULT 0;

CREATE TABLE message_parts (
    message_pk   bigint NOT NULL REFERENCES messages (pk),
    content_id   text NOT NULL,
    content_type text NOT NULL,
    size         bigint NOT NULL,
    sha256       bytea NOT NULL,
    chunks       integer NOT NULL,
    PRIMARY KEY (message_pk, content_id)
);

CREATE TABLE message_part_chunks (
    message_pk bigint NOT NULL,
    content_id text NOT NULL,
    seq        integer NOT NULL,
    data       bytea NOT NULL,
    PRIMARY KEY (message_pk, content_id, seq),
    FOREIGN KEY (message_pk, content_id) REFERENCES message_parts (message_pk, content_id)
);
ALTER TABLE message_part_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- 0006: events of one kind, newest first.
CREATE INDEX audit_events_kind_seq ON audit_events (kind, seq);

-- 0007: letter search by delivery status, newest first (created_at = the message's accepted_at).
CREATE INDEX deliveries_status_created ON deliveries (status, created_at DESC, message_pk DESC);
