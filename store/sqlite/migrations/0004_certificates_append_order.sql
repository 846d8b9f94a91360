-- Certificates are stored in the order they were issued: a sequential row
-- id, with the (random) serial in a unique index of its own. Keyed by the
-- serial, every insert landed on a random, nearly full leaf of ~1 KiB rows
-- and split it: about seven pages written to the WAL per certificate. In
-- issue order, the rows of a group commit share the last leaf, and only
-- the serial index takes a random (small-entry) page.
CREATE TABLE certificates_by_issue (
    id             INTEGER PRIMARY KEY,
    serial         INTEGER NOT NULL UNIQUE,
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
INSERT INTO certificates_by_issue (serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id,
                                   approvers, fingerprint, ca_fingerprint, certificate, issued_at, revoked_at, revoke_reason)
SELECT serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id,
       approvers, fingerprint, ca_fingerprint, certificate, issued_at, revoked_at, revoke_reason
FROM certificates ORDER BY issued_at, serial;
DROP TABLE certificates;
ALTER TABLE certificates_by_issue RENAME TO certificates;
CREATE INDEX certificates_by_requester ON certificates (requester, issued_at);
CREATE INDEX certificates_by_group ON certificates (host_group, valid_before);
CREATE INDEX certificates_by_issued ON certificates (issued_at);
CREATE INDEX certificates_by_request ON certificates (request_id);
CREATE INDEX certificates_by_key_id ON certificates (key_id);
CREATE INDEX certificates_by_valid_after ON certificates (valid_after);
CREATE INDEX certificates_by_lifetime ON certificates (valid_before - valid_after);
