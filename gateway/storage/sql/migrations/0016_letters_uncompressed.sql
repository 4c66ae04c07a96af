-- A letter's bytes (received, forwarded, the signed receipt) are stored out of line without pglz.
-- They are XML around base64 of already compressed files (PDF): pglz saved 15% of their size and
-- cost PostgreSQL 0.34 ms of CPU per accepted letter, 40% of its whole share (bench/pg_letter.py:
-- 0.85 -> 0.51 ms per letter, 24.7 -> 29.0 KB of TOAST and 28 -> 33 KB of WAL per letter).
ALTER TABLE messages ALTER COLUMN received SET STORAGE EXTERNAL,
                     ALTER COLUMN forwarded SET STORAGE EXTERNAL,
                     ALTER COLUMN receipt SET STORAGE EXTERNAL;
