package hostconfig

import (
	"fmt"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// EmptyKRL returns an OpenSSH key revocation list that revokes nothing: the
// header of PROTOCOL.krl with the given krl_version and generated_date and
// no sections. sshd reads it as "no key revoked"; `ssh-keygen -k` writes
// the same bytes. The encoding is ca.MarshalKRL's.
func EmptyKRL(version uint64, generated time.Time) []byte {
	return ca.MarshalKRL(version, generated, "", nil)
}

// CheckKRLHeader returns an error wrapping ErrInvalidFiles unless data is a
// well-framed KRL of format version 1. sshd refuses every certificate when
// it cannot parse the KRL, so `host sync` uses this to refuse a wrong
// download before it replaces the last good copy.
func CheckKRLHeader(data []byte) error {
	if _, err := ca.ParseKRLHeader(data); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidFiles, err)
	}
	return nil
}
