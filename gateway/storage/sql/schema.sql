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
    -- (0019) NULL: received with forwarded_edits applied (gateway.storage.forwarded); read it through
    -- forwarded_bytes()
    forwarded         bytea,
    evidence          bytea,
    -- (0023) NULL: the message's own forwarded bytes (a delivery receipt's message); read it through
    -- message_receipt()
    receipt           bytea,
    accepted_at       timestamptz NOT NULL,
    forwarded_edits   integer[],
    forwarded_inserts bytea,
    CONSTRAINT messages_sender_message_id UNIQUE (sender, message_id),
    CONSTRAINT messages_forwarded_stored
        CHECK (forwarded IS NOT NULL OR (forwarded_edits IS NOT NULL AND forwarded_inserts IS NOT NULL))
);
-- (0025) partial: every query asks letter_number = ...; receipts and most notifiers have none
CREATE INDEX messages_letter ON messages (letter_number, letter_date) WHERE letter_number IS NOT NULL;
-- (0016) A letter's bytes are stored out of line without pglz: XML around base64 of compressed files,
-- pglz saved 15% of their size for 40% of PostgreSQL's CPU per letter (bench/pg_letter.py).
ALTER TABLE messages ALTER COLUMN received SET STORAGE EXTERNAL,
                     ALTER COLUMN forwarded SET STORAGE EXTERNAL,
                     ALTER COLUMN receipt SET STORAGE EXTERNAL,
                     ALTER COLUMN forwarded_inserts SET STORAGE EXTERNAL;

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
    CONSTRAINT deliveries_message_recipient UNIQUE (message_pk, recipient),
    -- One of more than 50 deliveries of one message (a circular letter): claimed after ordinary ones.
    bulk            boolean NOT NULL DEFAULT false,
    -- A route-change notice to an agency's old route: the route to use instead of the one in force.
    pinned_route    jsonb
);
CREATE INDEX deliveries_due ON deliveries (bulk, next_attempt_at)
    WHERE status IN ('queued', 'sending', 'retry_wait');
-- (0019: deliveries_pending_by_recipient dropped; deliveries_open serves its look-ups)
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
    -- (0023) receipt and ack NULL: the delivery receipt is the forwarded bytes of the message
    -- receipt_message_pk, the acknowledgement its evidence; read them through the view receipts_full
    receipt     bytea,
    ack         bytea,
    created_at  timestamptz NOT NULL,
    receipt_message_pk bigint REFERENCES messages (pk)
);
ALTER TABLE receipts ADD CONSTRAINT receipts_receipt_stored
    CHECK (receipt IS NOT NULL OR receipt_message_pk IS NOT NULL) NOT VALID;
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
-- sender. Substring search of Thai subjects and letter numbers (pg_trgm GIN) is on message_search (0019).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_accepted_pk ON messages (accepted_at DESC, pk DESC);
CREATE INDEX messages_sender_accepted ON messages (sender, accepted_at DESC, pk DESC);
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

-- ---- 0008_typed_batches
CREATE TYPE new_message AS (
    ord               integer,
    sender            text,
    message_id        text,
    message_type      text,
    conversation_id   text,
    ref_to_message_id text,
    letter_number     text,
    letter_date       date,
    subject           text,
    speed             text,
    secrecy           text,
    channel           text,
    received_sha256   bytea,
    received          bytea,
    forwarded         bytea,
    evidence          bytea,
    receipt           bytea,
    accepted_at       timestamptz,
    audit             text,
    notifier_kind     text,
    registry_number   text,
    parts             integer,
    resend_guard      text,
    forwarded_edits   integer[],  -- (0019)
    forwarded_inserts bytea
);

CREATE TYPE new_delivery AS (
    ord        integer,
    id         uuid,
    recipient  text,
    route      text,
    status     text,
    expires_at timestamptz
);

-- Group commit: many messages (with their deliveries and audit events) in one statement (a lone
-- message is a batch of one). Each delivery names its message by ord. A recipient whose destination
-- is backing off gets its first attempt at the end of that backoff. Rows whose (sender, message_id)
-- exists already are skipped and come back without a pk; the caller answers those with the original
-- receipt. A letter with a resend guard (the e-CMS rule) already sent as another letter to one of
-- its recipients is skipped too and comes back with that recipient in sent_otherwise (checked here,
-- not in a query of its own: that was a round trip and a transaction per e-CMS letter, 0.6 ms of
-- PostgreSQL CPU each).
CREATE FUNCTION insert_messages(batch new_message[], dels new_delivery[])
RETURNS TABLE (out_ord integer, out_pk bigint, out_sent_otherwise text)
LANGUAGE plpgsql VOLATILE
-- (0018) PL/pgSQL with one generic plan: as LANGUAGE sql the body was parsed and planned on every
-- call, 0.6 ms of CPU per group commit (bench/pg_letter.py --batch 2: 0.95 -> 0.55 ms per letter).
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
RETURN QUERY
WITH input AS (
    SELECT * FROM unnest(batch)
), r AS (
    -- A message with more than 50 deliveries (a circular letter) is bulk: its deliveries are
    -- claimed after ordinary ones that are due (claim_due), so it never starves other letters.
    SELECT u.*, count(*) OVER (PARTITION BY u.ord) > 50 AS bulk FROM unnest(dels) u
), blocked AS (
    -- The e-CMS resend rule: the first recipient whose latest live letter from this sender with
    -- this number and date is another letter than the guard (neither it nor a resend, guard.r<n>).
    -- The letters are found by number and date alone (OFFSET 0 keeps that subquery whole; with the
    -- sender inside it, a plan made on an empty table read every letter the sender ever sent through
    -- messages_sender_accepted, once per recipient) and min() takes
    -- the first recipient: with ORDER BY ... LIMIT 1 the planner walked the recipient's deliveries
    -- newest first to stop early, through every letter that recipient ever had when none matched.
    SELECT i.ord, other.recipient FROM input i
    CROSS JOIN LATERAL (
        SELECT min(latest.recipient) AS recipient FROM (
            SELECT DISTINCT ON (d.recipient) d.recipient, pm.message_id
            FROM (SELECT pk, message_id, accepted_at, sender, message_type FROM messages
                  WHERE letter_number = i.letter_number AND letter_date = i.letter_date OFFSET 0) pm
            JOIN deliveries d ON d.message_pk = pm.pk
            WHERE pm.sender = i.sender AND pm.message_type = 'letter'
              AND d.status <> 'withdrawn' AND d.recipient IN (SELECT r.recipient FROM r WHERE r.ord = i.ord)
            ORDER BY d.recipient, pm.accepted_at DESC, pm.pk DESC
        ) latest
        WHERE split_part(latest.message_id, '.r', 1) <> i.resend_guard
    ) other
    WHERE i.resend_guard IS NOT NULL AND other.recipient IS NOT NULL
), m AS (
    INSERT INTO messages (sender, message_id, message_type, conversation_id, ref_to_message_id,
                          letter_number, letter_date, subject, speed, secrecy, channel,
                          received_sha256, received, forwarded, forwarded_edits, forwarded_inserts, evidence,
                          receipt, accepted_at, notifier_kind, registry_number, parts)
    SELECT sender, message_id, message_type::message_type, conversation_id, ref_to_message_id, letter_number,
           letter_date, subject, speed, secrecy, channel, received_sha256, received, forwarded, forwarded_edits,
           forwarded_inserts, evidence, receipt, accepted_at, notifier_kind, registry_number, parts
    FROM input WHERE ord NOT IN (SELECT ord FROM blocked) ORDER BY ord
    ON CONFLICT (sender, message_id) DO NOTHING
    RETURNING pk, sender, message_id
), mi AS (
    SELECT m.pk, i.ord, i.accepted_at, i.audit, i.sender FROM m
    JOIN input i ON i.sender = m.sender AND i.message_id = m.message_id
), d AS (
    INSERT INTO deliveries (id, message_pk, recipient, route, status, next_attempt_at, created_at, expires_at, bulk)
    SELECT r.id, mi.pk, r.recipient, r.route, r.status::delivery_status,
           greatest(mi.accepted_at, coalesce(dest.backoff_until, mi.accepted_at)), mi.accepted_at, r.expires_at,
           r.bulk
    FROM r JOIN mi ON mi.ord = r.ord
    LEFT JOIN destinations dest ON dest.agency = r.recipient
), a AS (
    -- (data-modifying CTEs always run to completion, read or not)
    INSERT INTO audit_events (at, actor, kind, message_pk, details)
    SELECT mi.accepted_at, mi.sender, 'message.accepted', mi.pk, mi.audit::jsonb FROM mi ORDER BY mi.ord
)
SELECT ord, pk, NULL FROM mi
UNION ALL
SELECT ord, NULL, recipient FROM blocked;
END
$$;

-- A decided outcome of one delivery (gateway.delivery.transitions decides, purely).
CREATE TYPE delivery_transition AS (
    ord               integer,
    delivery_id       uuid,
    worker            text,         -- the claim's holder; NULL for a pull acknowledgement
    outcome           text,         -- delivered | retry | dead
    permanent         boolean,      -- dead because the office refused (not because retries ran out)
    attempt           integer,      -- the attempt to record (NULL: none, a pull acknowledgement)
    started_at        timestamptz,
    at                timestamptz,
    reason            text,
    due_at            timestamptz,  -- retry: when, before any destination backoff
    message_pk        bigint,
    recipient         text,
    actor             text,
    details           text,         -- the audit event's details (JSON)
    receipt           bytea,        -- delivered: the signed delivery receipt ('' when none is made; NULL: its
                                    -- receipt message's forwarded bytes, sent as edits, 0024)
    ack               bytea,        -- delivered: the office's acknowledgement, kept as evidence
    reset_destination boolean,      -- a pushed outcome: the office answered
    breaker_threshold integer,      -- retry: consecutive failures that open the destination's backoff
    backoff_s         double precision
);

-- Apply a batch of transitions in one round trip. Returns, per transition, whether it applied: a
-- delivered/retry/dead transition applies only from a state that allows it (the dispatcher's only
-- while its claim holds); the attempt and the destination's health are recorded either way, since
-- the attempt happened. Audit events come in transition order, each delivery's delivered event
-- before the message.accepted of the delivery receipt it produces.
CREATE FUNCTION apply_delivery_transitions(p_transitions delivery_transition[], p_receipts new_message[],
                                           p_receipt_deliveries new_delivery[])
RETURNS TABLE (out_ord integer, out_applied boolean)
LANGUAGE plpgsql VOLATILE
-- (0022) one generic plan per statement, planned once per connection (custom plans were planned anew on every call);
-- (0025) on indexes: planned on a new database's nearly empty tables, the UPDATE of deliveries read every
-- delivery by a Seq Scan and a Hash Join for as long as the connection lived (every row is found by its key)
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    done uuid[];
    receipts new_message[] := '{}';
    rec new_message;
    item record;
    same boolean;
    signed bytea;
    linked integer[] := '{}';  -- ords of receipt messages that hold the transition's receipt and ack
    ords integer[] := '{}';
    pks bigint[] := '{}';
    failed boolean;      -- (0025) a failure that counts against its destination
    undelivered boolean; -- (0025) any outcome but delivered
BEGIN
    -- (0025) Statements with nothing to do are not run: each one's executor start-up (a tuple descriptor of the
    -- 19 fields of every unnest(p_transitions), the indexes of every table it writes) cost more than its rows.
    SELECT coalesce(bool_or(x.outcome <> 'delivered' AND NOT x.permanent), false),
           coalesce(bool_or(x.outcome <> 'delivered'), false)
    INTO failed, undelivered FROM unnest(p_transitions) x;

    INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, error)
    SELECT x.delivery_id, x.attempt, x.started_at, x.at,
           CASE WHEN x.outcome = 'delivered' THEN 'delivered' WHEN x.permanent THEN 'refused' ELSE 'failed' END,
           CASE WHEN x.outcome = 'delivered' THEN NULL ELSE x.reason END
    FROM unnest(p_transitions) x WHERE x.attempt IS NOT NULL
    ORDER BY x.ord
    ON CONFLICT (delivery_id, attempt) DO UPDATE
    SET finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome, error = EXCLUDED.error;

    -- Destinations that failed: one more consecutive failure each, then backoff once the count
    -- reaches the threshold (the circuit opens).
    IF failed THEN
    INSERT INTO destinations AS dst (agency, consecutive_failures, failing_since, last_error, updated_at)
    SELECT f.recipient, f.n, f.at, f.reason, f.at FROM (
        SELECT x.recipient, count(*)::integer AS n, min(x.at) AS at,
               (array_agg(x.reason ORDER BY x.ord DESC))[1] AS reason
        FROM unnest(p_transitions) x WHERE x.outcome <> 'delivered' AND NOT x.permanent
        GROUP BY x.recipient) f
    ON CONFLICT (agency) DO UPDATE
    SET consecutive_failures = dst.consecutive_failures + EXCLUDED.consecutive_failures,
        failing_since = coalesce(dst.failing_since, EXCLUDED.failing_since),
        last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at;

    UPDATE destinations dst
    SET backoff_until = greatest(coalesce(dst.backoff_until, b.until), b.until)
    FROM (SELECT x.recipient, max(x.at + make_interval(secs => x.backoff_s)) AS until,
                 max(x.breaker_threshold) AS threshold
          FROM unnest(p_transitions) x WHERE x.outcome <> 'delivered' AND NOT x.permanent
          GROUP BY x.recipient) b
    WHERE dst.agency = b.recipient AND dst.consecutive_failures >= b.threshold;
    END IF;

    -- Destinations that answered (a delivery, or a refusal: the office is up): healthy again.
    UPDATE destinations dst
    SET consecutive_failures = 0, failing_since = NULL, backoff_until = NULL, last_error = NULL, updated_at = ok.at
    FROM (SELECT x.recipient, max(x.at) AS at FROM unnest(p_transitions) x
          WHERE x.reset_destination AND (x.outcome = 'delivered' OR x.permanent)
            AND NOT EXISTS (SELECT 1 FROM unnest(p_transitions) y WHERE y.recipient = x.recipient
                                                        AND y.outcome <> 'delivered' AND NOT y.permanent)
          GROUP BY x.recipient) ok
    WHERE dst.agency = ok.recipient AND (dst.consecutive_failures > 0 OR dst.backoff_until IS NOT NULL);

    WITH changed AS (
        UPDATE deliveries d
        SET status = CASE x.outcome WHEN 'delivered' THEN 'delivered' WHEN 'retry' THEN 'retry_wait'
                                    ELSE 'dead' END::delivery_status,
            delivered_at = CASE WHEN x.outcome = 'delivered' THEN x.at ELSE d.delivered_at END,
            next_attempt_at = CASE WHEN x.outcome = 'retry'
                                   THEN greatest(x.due_at, coalesce(dst.backoff_until, x.due_at))
                                   ELSE d.next_attempt_at END,
            last_error = CASE WHEN x.outcome = 'delivered' THEN NULL ELSE x.reason END,
            leased_by = NULL
        FROM unnest(p_transitions) x LEFT JOIN destinations dst ON dst.agency = x.recipient
        WHERE d.id = x.delivery_id
          -- (0025) the rows by their key whatever the plan: this generic plan, made once per connection while
          -- deliveries had no statistics yet (a new database), joined them by a Seq Scan of every delivery
          AND d.id = ANY (ARRAY(SELECT y.delivery_id FROM unnest(p_transitions) y))
          AND CASE WHEN x.outcome = 'delivered'
                   THEN d.status IN ('sending', 'inbox', 'queued', 'retry_wait')
                        AND (x.worker IS NULL OR d.leased_by = x.worker)
                   ELSE d.status = 'sending' AND d.leased_by = x.worker END
        RETURNING d.id, d.next_attempt_at
    ), events AS (
        INSERT INTO audit_events (at, actor, kind, message_pk, delivery_id, details)
        SELECT x.at, x.actor,
               CASE x.outcome WHEN 'delivered' THEN 'delivery.delivered' WHEN 'retry' THEN 'delivery.retry'
                              ELSE 'delivery.dead' END,
               x.message_pk, x.delivery_id,
               CASE WHEN x.outcome = 'retry' AND c.next_attempt_at <> x.due_at
                    THEN x.details::jsonb || jsonb_build_object('next_attempt_at', c.next_attempt_at)
                    ELSE x.details::jsonb END
        FROM unnest(p_transitions) x JOIN changed c ON c.id = x.delivery_id
        ORDER BY x.ord
    )
    SELECT coalesce(array_agg(c.id), '{}') INTO done FROM changed c;

    IF undelivered THEN
        -- While a destination backs off, its waiting deliveries move past the backoff so the claim
        -- query never wades through them. (0025: a statement of its own, run only after an outcome other than
        -- delivered; the deliveries of the batch are left out as before, so it writes the same rows.)
        UPDATE deliveries d SET next_attempt_at = dst.backoff_until
        FROM destinations dst
        WHERE dst.agency IN (SELECT x.recipient FROM unnest(p_transitions) x WHERE x.outcome <> 'delivered')
          AND dst.backoff_until IS NOT NULL AND d.recipient = dst.agency
          AND d.status IN ('queued', 'retry_wait') AND d.next_attempt_at < dst.backoff_until
          AND d.id NOT IN (SELECT x.delivery_id FROM unnest(p_transitions) x);
    END IF;

    -- The delivery receipts of what was delivered, as new messages back to the senders (ord names
    -- the transition that produced each). A receipt message's forwarded bytes, its receipt and its evidence
    -- that are the transition's signed receipt and acknowledgement come empty (sent once, 0022) and are
    -- filled here; forwarded bytes may also come as edits of the unsigned receipt (0023, as a letter's,
    -- 0019). A message whose forwarded bytes are the signed receipt keeps no receipt of its own (NULL:
    -- the same bytes, 0023), and one that also holds the acknowledgement (every one the gateway makes)
    -- is what the delivery's receipts row names in place of copies of them. A transition's receipt that
    -- comes NULL (0024) is its message's forwarded bytes, sent as edits: taken from them, for the message
    -- and for a receipts row that holds its own copy.
    IF cardinality(p_receipts) > 0 THEN  -- (0025) none: no loop, no insert_messages() start-up
    FOR item IN
        SELECT r, x.receipt AS signed, x.ack FROM unnest(p_receipts) r JOIN unnest(p_transitions) x ON x.ord = r.ord
        WHERE x.delivery_id = ANY (done) ORDER BY r.ord
    LOOP
        rec := item.r;
        IF rec.evidence = '' THEN rec.evidence := item.ack; END IF;
        signed := item.signed;
        IF signed IS NULL THEN
            -- (0025) the message's forwarded bytes, as edits: not rebuilt here (only a receipts row that keeps
            -- its own copy reads them, below); they are the transition's signed receipt, never empty
            same := true;
        ELSE
            IF rec.forwarded = '' THEN rec.forwarded := signed; END IF;
            same := signed <> ''
                    AND forwarded_bytes(rec.received, rec.forwarded, rec.forwarded_edits, rec.forwarded_inserts) = signed;
        END IF;
        IF rec.receipt = '' THEN rec.receipt := CASE WHEN same THEN NULL ELSE signed END; END IF;
        IF same AND rec.evidence IS NOT DISTINCT FROM item.ack THEN linked := linked || rec.ord; END IF;
        receipts := receipts || rec;
    END LOOP;
    END IF;
    IF cardinality(receipts) > 0 THEN
    SELECT coalesce(array_agg(i.out_ord), '{}'), coalesce(array_agg(i.out_pk), '{}') INTO ords, pks
    FROM insert_messages(
        receipts,
        ARRAY(SELECT rd::new_delivery FROM unnest(p_receipt_deliveries) rd JOIN unnest(p_transitions) x ON x.ord = rd.ord
              WHERE x.delivery_id = ANY (done) ORDER BY rd.ord)) i
    WHERE i.out_pk IS NOT NULL AND i.out_ord = ANY (linked);
    END IF;

    INSERT INTO receipts (message_pk, delivery_id, kind, receipt, ack, created_at, receipt_message_pk)
    SELECT x.message_pk, x.delivery_id, 'delivery',
           CASE WHEN l.pk IS NULL
                THEN coalesce(x.receipt, (SELECT forwarded_bytes(r.received, r.forwarded, r.forwarded_edits,
                                                                 r.forwarded_inserts)
                                          FROM unnest(p_receipts) r WHERE r.ord = x.ord)) END,
           CASE WHEN l.pk IS NULL THEN x.ack END, x.at, l.pk
    FROM unnest(p_transitions) x LEFT JOIN unnest(ords, pks) l (ord, pk) ON l.ord = x.ord
    WHERE x.outcome = 'delivered' AND x.delivery_id = ANY (done)
    ORDER BY x.ord
    ON CONFLICT (delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING;

    RETURN QUERY SELECT x.ord, x.delivery_id = ANY (done) FROM unnest(p_transitions) x ORDER BY x.ord;
END $$;

-- The latest answer of a recipient's registry to a letter: linked by message id, or (a notifier that
-- names no message id) the e-CMS way, by letter number and date, answered after this letter was
-- accepted, so a letter resent under the same number and date does not inherit its withdrawn
-- predecessor's rejection. A single SELECT, so the planner inlines it where it is used.
CREATE FUNCTION latest_registry_answer(letter_pk bigint, answering text)
RETURNS TABLE (notifier_kind text, registry_number text, accepted_at timestamptz, message_id text)
LANGUAGE sql STABLE AS $$
    SELECT n.notifier_kind, n.registry_number, n.accepted_at, n.message_id
    FROM messages m
    JOIN messages n ON n.message_type = 'notifier' AND n.sender = answering
    JOIN deliveries nd ON nd.message_pk = n.pk AND nd.recipient = m.sender
    WHERE m.pk = letter_pk
      AND (n.ref_to_message_id = m.message_id
           OR (n.ref_to_message_id IS NULL AND n.letter_number = m.letter_number
               AND n.letter_date = m.letter_date AND n.accepted_at >= m.accepted_at))
    ORDER BY n.accepted_at DESC, n.pk DESC
    LIMIT 1
$$;

-- The agency directory in PostgreSQL, versioned. Every change is one directory version (who,
-- when, why, the sha256 of the whole directory after it) with one history row per agency changed
-- (its entry before and after); any past version is the latest history row of each agency at or
-- before it. A change notifies 'gateway_directory' (at commit) so every process reloads.
CREATE TABLE directory_versions (
    version bigint PRIMARY KEY,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    reason text NOT NULL,
    sha256 text NOT NULL,
    source_sha256 text,
    agencies integer NOT NULL,
    changes integer NOT NULL
);

CREATE TABLE agencies (
    code text PRIMARY KEY CHECK (code ~ '^([0-9]{5}|[0-9]{10})$'),
    entry jsonb NOT NULL,
    version bigint NOT NULL REFERENCES directory_versions (version),
    name_th text NOT NULL,
    name_en text NOT NULL,
    kind text NOT NULL,
    parent text,
    province text
);
CREATE INDEX agencies_kind_province ON agencies (kind, province);
CREATE INDEX agencies_parent ON agencies (parent);

CREATE TABLE agency_history (
    version bigint NOT NULL REFERENCES directory_versions (version),
    code text NOT NULL,
    before jsonb,
    after jsonb,
    PRIMARY KEY (code, version)
);
CREATE INDEX agency_history_version ON agency_history (version);

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

-- ---- 0014_timestamp_batches
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
-- receipt (messages.receipt), or a delivery receipt (receipts.receipt; since 0023 both read through
-- message_receipt() and the view receipts_full, where a delivery receipt is stored once). chains: how many
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

-- Long-term validation material (issue 16, pki.ltv): every certificate, OCSP answer, CRL, validation
-- report and trust snapshot a letter's validation relied on, stored once by the SHA-256 of its bytes
-- however many letters rely on it. A letter names its report in its audit event (validation_sha256),
-- so the signed chain vouches for the report and the report for every item.
CREATE TABLE validation_items (
    sha256    bytea PRIMARY KEY CHECK (length(sha256) = 32),
    kind      text NOT NULL CHECK (kind IN ('cert', 'ocsp', 'crl', 'report', 'trust')),
    data      bytea NOT NULL,
    stored_at timestamptz NOT NULL
);

-- Dated snapshots of the trust store: a new version whenever the set of anchors and intermediates
-- changes (each change is also an audit event, trust.snapshot). The snapshot document is an item.
CREATE TABLE trust_snapshots (
    version bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256  bytea NOT NULL UNIQUE REFERENCES validation_items (sha256),
    at      timestamptz NOT NULL
);

-- Letters accepted while their author's revocation status could not be established under hard-fail
-- (validation-pending): they have no deliveries yet (nothing unverified can be claimed); the planned
-- deliveries wait here until a re-check forwards or refuses the letter.
CREATE TABLE validation_pending (
    message_pk    bigint PRIMARY KEY REFERENCES messages (pk),
    deliveries    jsonb NOT NULL,
    since         timestamptz NOT NULL,
    deadline      timestamptz NOT NULL,
    next_check_at timestamptz NOT NULL,
    checks        integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX validation_pending_due ON validation_pending (next_check_at);

-- ---- 0013_stats_rollups
-- The rollup job reads the audit events after its watermark (every state change of a letter is one:
-- message.accepted, delivery.delivered, delivery.dead, message.rejected) and adds them up per agency,
-- per hour and per Bangkok day, in the transaction that moves the watermark: nothing is added on the
-- intake path. The watermark only passes a sequence number once every transaction that could still
-- commit an event at or below it has ended (the audit sealer's fence: seq read, then running xids).

CREATE TABLE stats_watermark (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq        bigint NOT NULL,  -- every audit event with seq <= this is in the rollups
    fence_seq  bigint,           -- events up to this are final once none of fence_xids runs
    fence_xids text[],
    events     bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL,
    -- (0020) every week and month that ends on or before this day is in stats_spans (NULL: none yet)
    spans_through date
);
INSERT INTO stats_watermark (seq, updated_at) VALUES (0, now());

-- One row per agency, side and hour (side 's': as the sending agency, 'r': as the receiving one).
-- letters: letters accepted (side s) or addressed to the agency (side r); delivered, dead: deliveries
-- of letters that completed or became dead letters; answered, registered: registry answers received
-- (ReceiveLetterNotifier) and registered with a number (AcceptLetterNotifier).
CREATE TABLE stats_hourly (
    side       "char" NOT NULL CHECK (side IN ('s', 'r')),
    agency     text NOT NULL,
    hour       timestamptz NOT NULL,
    letters    integer NOT NULL DEFAULT 0,
    delivered  integer NOT NULL DEFAULT 0,
    dead       integer NOT NULL DEFAULT 0,
    answered   integer NOT NULL DEFAULT 0,
    registered integer NOT NULL DEFAULT 0,
    PRIMARY KEY (side, hour, agency)
);
CREATE INDEX stats_hourly_agency ON stats_hourly (agency, side, hour);

-- The same per Bangkok day.
CREATE TABLE stats_daily (
    side       "char" NOT NULL CHECK (side IN ('s', 'r')),
    agency     text NOT NULL,
    day        date NOT NULL,
    letters    integer NOT NULL DEFAULT 0,
    delivered  integer NOT NULL DEFAULT 0,
    dead       integer NOT NULL DEFAULT 0,
    answered   integer NOT NULL DEFAULT 0,
    registered integer NOT NULL DEFAULT 0,
    PRIMARY KEY (side, day, agency)
);
CREATE INDEX stats_daily_agency ON stats_daily (agency, side, day);

-- Latency histograms per agency, side and Bangkok day; metric 'd': acceptance -> delivery, 'a':
-- delivery -> the registry's received answer, 'g': delivery -> registered. Bucket b holds durations
-- in (2^((b-1)/2), 2^(b/2)] seconds (b = 0: one second or less; b = 47: above 2^23 s, 97 days).
CREATE TABLE stats_latency (
    side   "char" NOT NULL,
    agency text NOT NULL,
    day    date NOT NULL,
    metric "char" NOT NULL CHECK (metric IN ('d', 'a', 'g')),
    bucket smallint NOT NULL CHECK (bucket BETWEEN 0 AND 47),
    n      integer NOT NULL,
    PRIMARY KEY (side, metric, day, agency, bucket)
);
CREATE INDEX stats_latency_agency ON stats_latency (agency, side, metric, day);

-- Submissions the gateway refused, per sending agency, hour and error code.
CREATE TABLE stats_refusals (
    agency text NOT NULL,
    hour   timestamptz NOT NULL,
    code   text NOT NULL,
    n      integer NOT NULL,
    PRIMARY KEY (hour, agency, code)
);
CREATE INDEX stats_refusals_agency ON stats_refusals (agency, hour);

-- (0020) weekly and monthly rollups of closed periods: a period of days is read as the fewest whole
-- months, ISO weeks and single days that cover it.
-- One row per span ('w': the ISO week that starts on day `first`, a Monday; 'm': the calendar month
-- that starts on day `first`), side and agency: the sums of stats_daily over the span's days.
CREATE TABLE stats_spans (
    span       "char" NOT NULL CHECK (span IN ('w', 'm')),
    side       "char" NOT NULL CHECK (side IN ('s', 'r')),
    agency     text NOT NULL,
    first      date NOT NULL,
    letters    integer NOT NULL DEFAULT 0,
    delivered  integer NOT NULL DEFAULT 0,
    dead       integer NOT NULL DEFAULT 0,
    answered   integer NOT NULL DEFAULT 0,
    registered integer NOT NULL DEFAULT 0,
    PRIMARY KEY (span, side, first, agency)
);
CREATE INDEX stats_spans_agency ON stats_spans (agency, side, span, first);

-- The latency histograms (stats_latency) per span: the sums over the span's days.
CREATE TABLE stats_latency_spans (
    span   "char" NOT NULL CHECK (span IN ('w', 'm')),
    side   "char" NOT NULL,
    agency text NOT NULL,
    first  date NOT NULL,
    metric "char" NOT NULL CHECK (metric IN ('d', 'a', 'g')),
    bucket smallint NOT NULL CHECK (bucket BETWEEN 0 AND 47),
    n      integer NOT NULL,
    PRIMARY KEY (span, side, metric, first, agency, bucket)
);
CREATE INDEX stats_latency_spans_agency ON stats_latency_spans (agency, side, metric, span, first);

-- The last day of the span of kind `span` ('w', 'm') that starts on `first`.
CREATE FUNCTION stats_span_end(span "char", first date) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE span WHEN 'w' THEN first + 6 ELSE (first + interval '1 month')::date - 1 END
$$;

-- Seal every week and month that ended after the last sealed day and on or before p_through: write its
-- sums from its days, once, and move spans_through. Returns the span rows written.
CREATE FUNCTION stats_seal_spans(p_through date) RETURNS integer
LANGUAGE sql VOLATILE AS $$
WITH wm AS (
    SELECT spans_through AS old FROM stats_watermark
), counts AS (
    INSERT INTO stats_spans (span, side, agency, first, letters, delivered, dead, answered, registered)
    SELECT x.span, x.side, x.agency, x.first, sum(x.letters), sum(x.delivered), sum(x.dead), sum(x.answered),
           sum(x.registered)
    FROM (SELECT s.span, d.side, d.agency,
                 date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END, d.day::timestamp)::date AS first,
                 d.letters, d.delivered, d.dead, d.answered, d.registered
          FROM stats_daily d CROSS JOIN (VALUES ('w'::"char"), ('m'::"char")) s (span), wm
          -- (a span that ends after the old bound starts at most 30 days before it)
          WHERE d.day <= p_through AND (wm.old IS NULL OR d.day > wm.old - 31)) x, wm
    WHERE stats_span_end(x.span, x.first) <= p_through
      AND (wm.old IS NULL OR stats_span_end(x.span, x.first) > wm.old)
    GROUP BY 1, 2, 3, 4
    RETURNING 1
), latency AS (
    INSERT INTO stats_latency_spans (span, side, agency, first, metric, bucket, n)
    SELECT x.span, x.side, x.agency, x.first, x.metric, x.bucket, sum(x.n)
    FROM (SELECT s.span, l.side, l.agency,
                 date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END, l.day::timestamp)::date AS first,
                 l.metric, l.bucket, l.n
          FROM stats_latency l CROSS JOIN (VALUES ('w'::"char"), ('m'::"char")) s (span), wm
          WHERE l.day <= p_through AND (wm.old IS NULL OR l.day > wm.old - 31)) x, wm
    WHERE stats_span_end(x.span, x.first) <= p_through
      AND (wm.old IS NULL OR stats_span_end(x.span, x.first) > wm.old)
    GROUP BY 1, 2, 3, 4, 5, 6
    RETURNING 1
), moved AS (
    UPDATE stats_watermark SET spans_through = p_through WHERE spans_through IS NULL OR spans_through < p_through
)
SELECT ((SELECT count(*) FROM counts) + (SELECT count(*) FROM latency))::integer
$$;

CREATE FUNCTION stats_bucket(seconds double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN seconds IS NULL THEN NULL WHEN seconds <= 1 THEN 0::smallint
                ELSE least(47, ceil(2 * ln(seconds) / ln(2.0)))::smallint END
$$;

-- An agency and every agency below it in the directory (a ministry's subtree).
CREATE FUNCTION stats_subtree(root text) RETURNS TABLE (code text)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE t(code, depth) AS (
        SELECT a.code, 0 FROM agencies a WHERE a.code = root
        UNION ALL
        SELECT a.code, t.depth + 1 FROM agencies a JOIN t ON a.parent = t.code WHERE t.depth < 16
    )
    SELECT DISTINCT t.code FROM t
$$;

-- Add the audit events with p_from < seq <= p_to to the rollups; returns how many events counted.
-- One statement: the facts of every event, then one upsert per rollup table.
CREATE FUNCTION stats_roll(p_from bigint, p_to bigint) RETURNS integer
LANGUAGE sql VOLATILE AS $$
WITH ev AS (
    SELECT e.seq, e.kind, e.message_pk, e.delivery_id, e.actor, e.details, e.at FROM audit_events e
    WHERE e.seq > p_from AND e.seq <= p_to
      AND e.kind IN ('message.accepted', 'delivery.delivered', 'delivery.dead', 'message.rejected')
), accepted AS (
    SELECT m.* FROM ev JOIN messages m ON m.pk = ev.message_pk WHERE ev.kind = 'message.accepted'
), answers AS (
    -- a registry's answer (received / registered) and the delivery of the letter it answers: by
    -- message id, or the e-CMS way (number and date, the latest letter accepted before the answer)
    SELECT n.sender AS answering, n.notifier_kind, n.accepted_at AS at, l.sender AS letter_sender,
           extract(epoch FROM n.accepted_at - coalesce(l.delivered_at, l.accepted_at)) AS seconds
    FROM accepted n
    CROSS JOIN LATERAL (
        SELECT x.sender, x.accepted_at, x.delivered_at FROM (
            SELECT l.sender, l.accepted_at, l.pk, d.delivered_at, 0 AS how
            FROM deliveries nd
            JOIN messages l ON l.sender = nd.recipient AND l.message_id = n.ref_to_message_id
            JOIN deliveries d ON d.message_pk = l.pk AND d.recipient = n.sender
            WHERE nd.message_pk = n.pk AND l.message_type = 'letter'
            UNION ALL
            SELECT l.sender, l.accepted_at, l.pk, d.delivered_at, 1
            FROM deliveries nd
            JOIN messages l ON l.sender = nd.recipient AND l.letter_number = n.letter_number
                           AND l.letter_date = n.letter_date AND l.accepted_at <= n.accepted_at
            JOIN deliveries d ON d.message_pk = l.pk AND d.recipient = n.sender
            WHERE nd.message_pk = n.pk AND l.message_type = 'letter' AND n.ref_to_message_id IS NULL
        ) x ORDER BY x.how, x.accepted_at DESC, x.pk DESC LIMIT 1
    ) l
    WHERE n.message_type = 'notifier' AND n.notifier_kind IN ('received', 'accepted')
), ended AS (
    SELECT ev.kind, ev.at, m.sender, d.recipient, extract(epoch FROM ev.at - m.accepted_at) AS seconds
    FROM ev JOIN deliveries d ON d.id = ev.delivery_id JOIN messages m ON m.pk = d.message_pk
    WHERE ev.kind IN ('delivery.delivered', 'delivery.dead') AND m.message_type = 'letter'
), facts (side, agency, at, letters, delivered, dead, answered, registered, metric, seconds) AS (
    SELECT 's'::"char", a.sender, a.accepted_at, 1, 0, 0, 0, 0, NULL::"char", NULL::double precision
    FROM accepted a WHERE a.message_type = 'letter'
    UNION ALL
    SELECT 'r', d.recipient, a.accepted_at, 1, 0, 0, 0, 0, NULL, NULL
    FROM accepted a JOIN deliveries d ON d.message_pk = a.pk WHERE a.message_type = 'letter'
    UNION ALL
    SELECT s.side, CASE s.side WHEN 's' THEN e.sender ELSE e.recipient END, e.at, 0,
           (e.kind = 'delivery.delivered')::int, (e.kind = 'delivery.dead')::int, 0, 0,
           CASE WHEN e.kind = 'delivery.delivered' THEN 'd'::"char" END, e.seconds
    FROM ended e CROSS JOIN (VALUES ('s'::"char"), ('r'::"char")) s (side)
    UNION ALL
    SELECT s.side, CASE s.side WHEN 's' THEN x.letter_sender ELSE x.answering END, x.at, 0, 0, 0,
           (x.notifier_kind = 'received')::int, (x.notifier_kind = 'accepted')::int,
           CASE x.notifier_kind WHEN 'received' THEN 'a'::"char" ELSE 'g'::"char" END, x.seconds
    FROM answers x CROSS JOIN (VALUES ('s'::"char"), ('r'::"char")) s (side)
), hourly AS (
    INSERT INTO stats_hourly AS h (side, agency, hour, letters, delivered, dead, answered, registered)
    SELECT side, agency, date_trunc('hour', at), sum(letters), sum(delivered), sum(dead), sum(answered),
           sum(registered)
    FROM facts GROUP BY 1, 2, 3
    ON CONFLICT (side, hour, agency) DO UPDATE
    SET letters = h.letters + EXCLUDED.letters, delivered = h.delivered + EXCLUDED.delivered,
        dead = h.dead + EXCLUDED.dead, answered = h.answered + EXCLUDED.answered,
        registered = h.registered + EXCLUDED.registered
), daily AS (
    INSERT INTO stats_daily AS h (side, agency, day, letters, delivered, dead, answered, registered)
    SELECT side, agency, (at AT TIME ZONE 'Asia/Bangkok')::date, sum(letters), sum(delivered), sum(dead),
           sum(answered), sum(registered)
    FROM facts GROUP BY 1, 2, 3
    ON CONFLICT (side, day, agency) DO UPDATE
    SET letters = h.letters + EXCLUDED.letters, delivered = h.delivered + EXCLUDED.delivered,
        dead = h.dead + EXCLUDED.dead, answered = h.answered + EXCLUDED.answered,
        registered = h.registered + EXCLUDED.registered
), latency AS (
    INSERT INTO stats_latency AS h (side, agency, day, metric, bucket, n)
    SELECT side, agency, (at AT TIME ZONE 'Asia/Bangkok')::date, metric, stats_bucket(seconds), count(*)
    FROM facts WHERE metric IS NOT NULL GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (side, metric, day, agency, bucket) DO UPDATE SET n = h.n + EXCLUDED.n
), spanned AS (
    -- (0020) a fact whose week or month is sealed already (stats_seal_spans): added to that span too
    SELECT x.* FROM (
        SELECT s.span, f.side, f.agency, date_trunc(CASE s.span WHEN 'w' THEN 'week' ELSE 'month' END,
                                                    f.at AT TIME ZONE 'Asia/Bangkok')::date AS first,
               f.letters, f.delivered, f.dead, f.answered, f.registered, f.metric, f.seconds
        FROM facts f CROSS JOIN (VALUES ('w'::"char"), ('m'::"char")) s (span)
    ) x, stats_watermark wm
    WHERE stats_span_end(x.span, x.first) <= wm.spans_through
), spans AS (
    INSERT INTO stats_spans AS h (span, side, agency, first, letters, delivered, dead, answered, registered)
    SELECT span, side, agency, first, sum(letters), sum(delivered), sum(dead), sum(answered), sum(registered)
    FROM spanned GROUP BY 1, 2, 3, 4
    ON CONFLICT (span, side, first, agency) DO UPDATE
    SET letters = h.letters + EXCLUDED.letters, delivered = h.delivered + EXCLUDED.delivered,
        dead = h.dead + EXCLUDED.dead, answered = h.answered + EXCLUDED.answered,
        registered = h.registered + EXCLUDED.registered
), latency_spans AS (
    INSERT INTO stats_latency_spans AS h (span, side, agency, first, metric, bucket, n)
    SELECT span, side, agency, first, metric, stats_bucket(seconds), count(*)
    FROM spanned WHERE metric IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (span, side, metric, first, agency, bucket) DO UPDATE SET n = h.n + EXCLUDED.n
), refusals AS (
    INSERT INTO stats_refusals AS h (agency, hour, code, n)
    SELECT ev.actor, date_trunc('hour', ev.at), coalesce(ev.details ->> 'code', 'unknown'), count(*)
    FROM ev WHERE ev.kind = 'message.rejected' GROUP BY 1, 2, 3
    ON CONFLICT (hour, agency, code) DO UPDATE SET n = h.n + EXCLUDED.n
)
SELECT count(*)::integer FROM ev
$$;

-- ---- 0019_lean_letter_rows (forwarded_bytes as of 0025)
-- The edits applied by a loop: what forwarded_bytes() did for every row up to 0025, now for rows of more than
-- two edits (the same statements).
CREATE FUNCTION forwarded_bytes_edits(received bytea, edits integer[], inserts bytea)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    out  bytea := '';
    pos  integer := 0;  -- bytes of received consumed
    used integer := 0;  -- bytes of inserts consumed
BEGIN
    FOR k IN 1 .. coalesce(array_length(edits, 1), 0) / 3 LOOP
        out := out || substring(received FROM pos + 1 FOR edits[3 * k - 2] - pos)
                   || substring(inserts FROM used + 1 FOR edits[3 * k]);
        pos := edits[3 * k - 2] + edits[3 * k - 1];
        used := used + edits[3 * k];
    END LOOP;
    RETURN out || substring(received FROM pos + 1);
END $$;

-- The forwarded bytes of a message row: forwarded, or received with its edits applied. One or two edits (a
-- delivery receipt's signature inserted; a letter's header Id and seal) are the loop's pieces written out, in
-- one SQL expression the planner inlines into the query that reads them: no PL/pgSQL call per row.
CREATE FUNCTION forwarded_bytes(received bytea, forwarded bytea, edits integer[], inserts bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN forwarded IS NOT NULL THEN forwarded
        WHEN array_length(edits, 1) = 3
            THEN substring(received FROM 1 FOR edits[1]) || substring(inserts FROM 1 FOR edits[3])
                 || substring(received FROM edits[1] + edits[2] + 1)
        WHEN array_length(edits, 1) = 6
            THEN substring(received FROM 1 FOR edits[1]) || substring(inserts FROM 1 FOR edits[3])
                 || substring(received FROM edits[1] + edits[2] + 1 FOR edits[4] - edits[1] - edits[2])
                 || substring(inserts FROM edits[3] + 1 FOR edits[6])
                 || substring(received FROM edits[4] + edits[5] + 1)
        ELSE forwarded_bytes_edits(received, edits, inserts)
    END
$$;

-- The console's substring search (pg_trgm GIN), off the insert path. No reference to messages: a
-- derived index of it, refilled from it.
CREATE TABLE message_search (
    message_pk    bigint PRIMARY KEY,
    accepted_at   timestamptz NOT NULL,
    sender        text NOT NULL,            -- (with message_type: every filter of a page is answered
    message_type  message_type NOT NULL,    -- here, before its LIMIT, without reading messages)
    subject       text,
    letter_number text
);
CREATE INDEX message_search_subject_trgm ON message_search USING gin (subject gin_trgm_ops);
CREATE INDEX message_search_letter_number_trgm ON message_search USING gin (letter_number gin_trgm_ops);
-- newest first, as the search pages: a common word is found by walking this, a rare one by the trigrams
CREATE INDEX message_search_accepted ON message_search (accepted_at DESC, message_pk DESC);

-- seq: every message whose message.accepted event has seq <= this is in message_search (when it has a
-- subject or a number); the search adds the messages of later events itself.
CREATE TABLE message_search_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

INSERT INTO message_search_state (seq, updated_at) VALUES (0, now());

-- One round of the filler: the messages accepted after the watermark, up to the audit chain's head
-- (at most p_batch sequence numbers), and the watermark moved, in the caller's transaction. NULL when
-- another process holds the round.
CREATE FUNCTION message_search_fill(p_batch bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE
-- planned for its actual range each round (once a second): a generic plan could not tell a few hundred
-- events from ten million
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    wm   bigint;
    upto bigint;
BEGIN
    SELECT seq INTO wm FROM message_search_state FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    upto := least((SELECT seq FROM audit_chain_head), wm + p_batch);
    IF upto <= wm THEN
        RETURN wm;
    END IF;
    INSERT INTO message_search (message_pk, accepted_at, sender, message_type, subject, letter_number)
    SELECT m.pk, m.accepted_at, m.sender, m.message_type, m.subject, m.letter_number
    FROM audit_events e JOIN messages m ON m.pk = e.message_pk
    WHERE e.kind = 'message.accepted' AND e.seq > wm AND e.seq <= upto
      AND (m.subject IS NOT NULL OR m.letter_number IS NOT NULL)
    ON CONFLICT (message_pk) DO NOTHING;
    UPDATE message_search_state SET seq = upto, updated_at = now();
    RETURN upto;
END $$;

-- ---- 0023_receipt_once
-- The submission receipt of a message row: receipt, or (NULL, 0023) its forwarded bytes. A single SELECT,
-- inlined where it is used: the forwarded bytes are read only for a row whose receipt is NULL.
CREATE FUNCTION message_receipt(receipt bytea, received bytea, forwarded bytea, edits integer[], inserts bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(receipt, forwarded_bytes(received, forwarded, edits, inserts))
$$;

-- The receipts as every reader reads them: a row that names its receipt message (0023) has that message's
-- forwarded bytes as its receipt and that message's evidence as its acknowledgement.
CREATE VIEW receipts_full AS
SELECT r.pk, r.message_pk, r.delivery_id, r.kind,
       coalesce(r.receipt, forwarded_bytes(m.received, m.forwarded, m.forwarded_edits, m.forwarded_inserts)) AS receipt,
       CASE WHEN r.receipt IS NULL THEN m.evidence ELSE r.ack END AS ack,
       r.created_at, r.receipt_message_pk
FROM receipts r LEFT JOIN messages m ON m.pk = r.receipt_message_pk;

