-- 0004: the receiving stamp (ตรารับ). When a recipient's registry answers
-- "accepted" with its registry number, the gateway keeps a copy of the
-- letter's main PDF stamped with that number, date and time (an incremental
-- update, so the author's signature still validates). Derived data: it can
-- always be produced again from the letter and the notifier.

CREATE TABLE stamped_letters (
    letter_pk       bigint NOT NULL REFERENCES messages (pk),
    recipient       text NOT NULL,
    registry_number text NOT NULL,
    notifier_pk     bigint REFERENCES messages (pk),
    pdf             bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (letter_pk, recipient)
);
