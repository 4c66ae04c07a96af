-- 0001: the spine. Messages, one delivery per recipient, attempts history,
-- per-destination state, receipts and the audit events.

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
