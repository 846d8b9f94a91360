-- The PostgreSQL ledger: the same tables, columns and encodings as the
-- SQLite ledger's (store/sqlite/migrations 0001 to 0005), so that both
-- compute the same row hashes and digests (package store) and a ledger can
-- be copied from one to the other. Times are Unix nanoseconds (UTC), as the
-- hashes cover them; serials are uint64 stored bit-for-bit in BIGINT.
CREATE TABLE requests (
    id          TEXT PRIMARY KEY,
    host_group  TEXT NOT NULL,
    requester   TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending','approved','denied','expired','cancelled')),
    reason      TEXT NOT NULL,
    duration_ns BIGINT NOT NULL CHECK (duration_ns > 0),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    approved_at BIGINT,
    ended_at    BIGINT,
    version     BIGINT NOT NULL
);
CREATE INDEX requests_by_requester ON requests (requester, created_at);
CREATE INDEX requests_by_state ON requests (state, host_group);
CREATE INDEX requests_by_created ON requests (created_at);

CREATE TABLE reviews (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests (id),
    reviewer   TEXT NOT NULL,
    event      TEXT NOT NULL CHECK (event IN ('APPROVE','REQUEST_CHANGES','COMMENT','DENY')),
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    dismissed  BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX reviews_by_request ON reviews (request_id, id);

-- In issue order (id), the random serial in a unique index of its own: a
-- serial is never recorded twice.
CREATE TABLE certificates (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial         BIGINT NOT NULL UNIQUE,
    key_id         TEXT NOT NULL,
    host_group     TEXT NOT NULL,
    principals     TEXT NOT NULL, -- JSON array, the exact text the digest covers
    valid_after    BIGINT NOT NULL,
    valid_before   BIGINT NOT NULL,
    requester      TEXT NOT NULL,
    request_id     TEXT NOT NULL REFERENCES requests (id),
    approvers      TEXT NOT NULL, -- JSON array
    fingerprint    TEXT NOT NULL,
    ca_fingerprint TEXT NOT NULL,
    certificate    TEXT NOT NULL,
    issued_at      BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoke_reason  TEXT
);
CREATE INDEX certificates_by_requester ON certificates (requester, issued_at);
CREATE INDEX certificates_by_group ON certificates (host_group, valid_before);
CREATE INDEX certificates_by_issued ON certificates (issued_at);
CREATE INDEX certificates_by_request ON certificates (request_id);
CREATE INDEX certificates_by_key_id ON certificates (key_id);
CREATE INDEX certificates_by_valid_after ON certificates (valid_after);
CREATE INDEX certificates_by_lifetime ON certificates ((valid_before - valid_after));
CREATE INDEX certificates_revoked ON certificates (valid_before) WHERE revoked_at IS NOT NULL;

-- The audit log, one total order: ids are assigned by the writer holding
-- the chain's advisory lock (see chain.go), each row's hash covering the
-- previous row's hash (store.CanonicalEvent). data is TEXT, not jsonb: the
-- hash covers the exact stored text. No two rows may link to the same
-- predecessor (events_prev_hash): a fork is refused by the database too.
-- mac is the server's HMAC of the row (store.EventMAC), NULL without a
-- checkpoint signer.
CREATE TABLE events (
    id         BIGINT PRIMARY KEY CHECK (id > 0),
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    type       TEXT NOT NULL,
    request_id TEXT NOT NULL DEFAULT '',
    serial     BIGINT NOT NULL DEFAULT 0,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    mac        TEXT
);
CREATE UNIQUE INDEX events_prev_hash ON events (prev_hash);
CREATE INDEX events_by_request ON events (request_id);
-- The newest event binding a request; its condition is the one of
-- sqlLatestBinding, word for word.
CREATE INDEX events_binding_request ON events (request_id, id) WHERE type <> 'certificate.issued' AND strpos(data, '"request_sha256":') > 0;
CREATE INDEX events_by_serial ON events (serial, id) WHERE serial <> 0;
CREATE INDEX events_revoked ON events (serial) WHERE type = 'certificate.revoked';

-- Signed checkpoints of the chain's head (store.Checkpoint).
CREATE TABLE checkpoints (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    event_id   BIGINT NOT NULL,
    event_hash TEXT NOT NULL,
    signature  TEXT NOT NULL
);

-- The SQLite ledger's baseline of certificates from before row bindings
-- (its migration 0005), for a ledger copied from one; empty otherwise.
CREATE TABLE certificate_baseline (
    serial BIGINT PRIMARY KEY,
    sha256 TEXT NOT NULL
);
