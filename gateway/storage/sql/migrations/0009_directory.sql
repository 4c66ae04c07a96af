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
