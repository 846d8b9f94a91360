package store

import (
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/store/sshsig"
)

// CheckpointNamespace is the SSHSIG namespace checkpoints are signed under,
// so a checkpoint signature can never pass for a signature of anything else
// made with the same key (ssh-keygen -Y check-novalidate -n NAMESPACE).
const CheckpointNamespace = "jit-ssh-ledger-checkpoint"

// Checkpoint is a signed statement that the event chain reached row Row,
// whose hash was Hash, at time At.
type Checkpoint struct {
	Row  int64     `json:"row"`
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
	// Signature is an armored OpenSSH SSHSIG over Message().
	Signature string `json:"signature"`
}

// Message returns the canonical bytes a checkpoint's signature covers.
func (c Checkpoint) Message() []byte {
	return fmt.Appendf(nil, "jit-ssh ledger checkpoint v1\nrow: %d\nhash: %s\nat: %s\n", c.Row, c.Hash, c.At.UTC().Format(time.RFC3339Nano))
}

// SignCheckpoint returns cp's signature by s, as a ledger's Checkpoint
// makes it (an SSHSIG over Message() in CheckpointNamespace); tools that
// build a ledger outside the server (the bench's generated ledger) use it
// to anchor it with the data dir's key. Whoever holds the key can sign any
// chain head; that is the limit of what checkpoints prove.
func SignCheckpoint(s ssh.Signer, cp Checkpoint) (string, error) {
	return sshsig.Sign(s, CheckpointNamespace, cp.Message())
}

// Verify checks cp's signature over its Message() and returns the key that
// made it; whether that key is trusted is the caller's decision.
func (c Checkpoint) Verify() (ssh.PublicKey, error) {
	return sshsig.Verify(c.Signature, CheckpointNamespace, c.Message())
}

// TailResult is the outcome of VerifyTail.
type TailResult struct {
	// Anchor is the row of the newest good signed checkpoint (0: none),
	// Rows how many event rows follow it, all checked.
	Anchor, Rows int64
}
