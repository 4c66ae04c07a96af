-- 0005: files that travel beside the envelope (multipart/related), for letters
-- of any size with bounded memory (see gateway/parts.py). A part is stored in
-- chunks of 1 MiB, written in the same transaction as its message, so a
-- letter is accepted with all its files or not at all. The chunks are already
-- compressed files (PDF, images): stored out of line without compression.

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
