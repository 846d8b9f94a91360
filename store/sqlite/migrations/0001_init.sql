-- Times are Unix nanoseconds (UTC). Serials are uint64 stored bit-for-bit in
-- SQLite's signed INTEGER; the store converts.
CREATE TABLE requests (
    id          TEXT PRIMARY KEY,
    host_group  TEXT NOT NULL,
    requester   TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending','approved','denied','expired','cancelled')),
    reason      TEXT NOT NULL,
    duration_ns INTEGER NOT NULL CHECK (duration_ns > 0),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    approved_at INTEGER,
    ended_at    INTEGER,
    version     INTEGER NOT NULL
);
CREATE INDEX requests_by_requester ON requests (requester, created_at);
CREATE INDEX requests_by_state ON requests (state, host_group);

CREATE TABLE reviews (
    id         INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests (id),
    reviewer   TEXT NOT NULL,
    event      TEXT NOT NULL CHECK (event IN ('APPROVE','REQUEST_CHANGES','COMMENT','DENY')),
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    dismissed  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX reviews_by_request ON reviews (request_id, id);

CREATE TABLE certificates (
    serial         INTEGER PRIMARY KEY,
    key_id         TEXT NOT NULL,
    host_group     TEXT NOT NULL,
    principals     TEXT NOT NULL, -- JSON array
    valid_after    INTEGER NOT NULL,
    valid_before   INTEGER NOT NULL,
    requester      TEXT NOT NULL,
    request_id     TEXT NOT NULL REFERENCES requests (id),
    approvers      TEXT NOT NULL, -- JSON array
    fingerprint    TEXT NOT NULL,
    ca_fingerprint TEXT NOT NULL,
    certificate    TEXT NOT NULL,
    issued_at      INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoke_reason  TEXT
);
CREATE INDEX certificates_by_requester ON certificates (requester, issued_at);
CREATE INDEX certificates_by_group ON certificates (host_group, valid_before);
CREATE INDEX certificates_by_issued ON certificates (issued_at);
CREATE INDEX certificates_by_request ON certificates (request_id);
CREATE INDEX certificates_by_key_id ON certificates (key_id);

-- The audit log. Each row's hash covers the previous row's hash and the
-- row's canonical encoding, so editing, deleting, inserting or reordering a
-- row breaks the chain.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    type       TEXT NOT NULL,
    request_id TEXT NOT NULL DEFAULT '',
    serial     INTEGER NOT NULL DEFAULT 0,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX events_by_request ON events (request_id);
