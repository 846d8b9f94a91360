-- Row bindings (see store/bind.go). The event that last changed a request
-- (with its reviews) or a certificate holds the digest of the row's
-- canonical content in its data, so audit verify and the server can tell a
-- row edited, inserted or deleted outside the server.
--
-- The newest event binding a request is looked up at every request read
-- that misses the request cache; this partial index answers that in one
-- seek. Its condition must stay, word for word, the one in sqlLatestBinding.
-- SQLite evaluates it on every insert into events: the type test comes
-- first, so certificate.issued events (the hot path's, which never bind a
-- request) skip the scan of their data.
CREATE INDEX events_binding_request ON events (request_id) WHERE type <> 'certificate.issued' AND instr(data, '"request_sha256":') > 0;

-- mac is HMAC-SHA256 (128 bits), under a key only the checkpoint signer can derive,
-- of the row's id and hash: the server's mark on the rows it wrote. It is
-- not part of the row's hash. Rows past the newest signed checkpoint must
-- carry a valid one, or the server refuses to start: someone who can
-- compute hashes but does not hold the checkpoint key cannot append rows
-- the next checkpoint would then sign over. NULL on rows written without
-- a checkpoint signer.
ALTER TABLE events ADD COLUMN mac TEXT;

-- The certificates already in a ledger when it was upgraded to this
-- version: one digest per row, the table itself bound by the digest in
-- the ledger.rows_bound event the upgrade writes (the requests of such a
-- ledger get one ledger.rows_bound event each). The upgrade itself runs in
-- Go, in the same transaction (store.DB.backfillBindings).
CREATE TABLE certificate_baseline (
    serial INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL
);

-- The newest event binding a certificate is looked up before the server
-- changes the row (revokeCerts, checkCertTx): one seek in this index.
CREATE INDEX events_by_serial ON events (serial) WHERE serial <> 0;

-- Every KRL fetch checks the revocation events against the certificates
-- table (checkRevocations); this index holds those events alone, so the
-- check does not scan the whole events table. Its condition must stay the
-- one in sqlRevocationEvents.
CREATE INDEX events_revoked ON events (serial) WHERE type = 'certificate.revoked';
