-- Signed checkpoints of the event chain's head. Each row says "the chain
-- reached event row event_id, whose hash was event_hash, at time at",
-- signed as an OpenSSH SSHSIG (namespace jit-ssh-ledger-checkpoint) by the
-- CA's file key or the dedicated checkpoint key. Deleting the tail of the
-- event log leaves a checkpoint pointing past its end, which verify reports.
-- The same checkpoints are appended to a sidecar file next to the ledger.
CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    event_id   INTEGER NOT NULL,
    event_hash TEXT NOT NULL,
    signature  TEXT NOT NULL
);
