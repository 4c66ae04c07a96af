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
