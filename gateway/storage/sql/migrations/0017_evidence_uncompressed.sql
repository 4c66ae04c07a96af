-- e-CMS letters keep the SOAP request as received (messages.evidence) beside the envelope built from
-- it. Compressing it on insert (pglz, as TOAST does once a row passes 2 kB) cost about 0.1 ms of database
-- CPU per e-CMS letter (a third of inserting such a row, measured on PostgreSQL 18) while it is read
-- only for evidence bundles: keep it out of line, uncompressed. (Rows written before keep their form; a letter's evidence costs up to a third more disk.)
ALTER TABLE messages ALTER COLUMN evidence SET STORAGE EXTERNAL;
