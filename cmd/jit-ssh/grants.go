package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// The grant cache lets a repeated 'jit-ssh login GROUP' go straight to
// POST /v1/certificates with the request ID of the caller's open grant,
// instead of listing the caller's requests first: one round trip instead
// of two, on every login after the first. It holds request IDs, groups and
// end times (nothing secret: request IDs are in every certificate's KeyId)
// in a 0600 file under the user's cache directory. The server stays the
// judge: a grant that ended, was revoked or is not the caller's is refused
// there (grant_ended, not_requester, ...), forgotten here, and login takes the long way.

const grantsFileName = "grants.json"

// cachedGrant is one open grant, for one server and caller.
type cachedGrant struct {
	Server string `json:"server"`
	// Who tells callers apart (several tokens on one account): the first
	// 16 hex digits of the token's SHA-256, never the token.
	Who       string    `json:"who"`
	Group     string    `json:"group"`
	RequestID string    `json:"request_id"`
	EndsAt    time.Time `json:"ends_at"`
}

// grantsFile is where the cache lives, or "" when there is no cache
// directory (the cache is then not used).
func (e *env) grantsFile() string {
	dir := e.getenv("XDG_CACHE_HOME")
	if dir == "" {
		home := e.getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".cache")
	}
	return filepath.Join(dir, "jit-ssh", grantsFileName)
}

// readGrants returns the cached grants that have not ended by now; a
// missing or unreadable file is an empty cache.
func (e *env) readGrants(now time.Time) []cachedGrant {
	path := e.grantsFile()
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path) //nolint:gosec // our own cache file
	if err != nil {
		return nil
	}
	var all []cachedGrant
	if json.Unmarshal(b, &all) != nil {
		return nil
	}
	live := all[:0]
	for _, g := range all {
		if g.EndsAt.After(now) && ca.CheckRequestID(g.RequestID) == nil && ca.CheckGroup(g.Group) == nil {
			live = append(live, g)
		}
	}
	return live
}

// cachedGrantFor returns the open grant cached for the server and group
// that still has at least grantMargin to run.
func (e *env) cachedGrantFor(server, group string, now time.Time) (cachedGrant, bool) {
	who := e.who()
	for _, g := range e.readGrants(now) {
		if g.Server == server && g.Who == who && g.Group == group && g.EndsAt.After(now.Add(grantMargin)) {
			return g, true
		}
	}
	return cachedGrant{}, false
}

// rememberGrant caches (or with endsAt zero, forgets) the grant for the
// server and group. The cache is a convenience: failing to write it is
// not an error of the login.
func (e *env) rememberGrant(server, group, requestID string, endsAt time.Time) {
	path := e.grantsFile()
	if path == "" {
		return
	}
	now := time.Now()
	who := e.who()
	var keep []cachedGrant
	for _, g := range e.readGrants(now) {
		if g.Server != server || g.Who != who || g.Group != group {
			keep = append(keep, g)
		}
	}
	if !endsAt.IsZero() {
		keep = append(keep, cachedGrant{Server: server, Who: who, Group: group, RequestID: requestID, EndsAt: endsAt})
	}
	b, err := json.Marshal(keep)
	if err == nil {
		err = writePrivateFile(path, b, false)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "(could not update the grant cache %s: %v)\n", path, err)
	}
}

// who identifies the caller's token in the cache without storing it.
func (e *env) who() string {
	sum := sha256.Sum256([]byte(e.token()))
	return hex.EncodeToString(sum[:8])
}

// grantRefused reports whether the server refused a certificate because
// the cached grant itself cannot be used any more (ended, revoked, not
// approved, not this caller's, unknown). Other refusals (outside the
// group's allowed hours, an approver who left the team, an outage) are
// the answer for the grant's long-way lookup too, and are returned as
// they are.
func grantRefused(err error) bool {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Code {
	case approval.CodeGrantEnded, approval.CodeRequestNotApproved, approval.CodeNotRequester, approval.CodeRequestNotFound, approval.CodeInvalidRequestID:
		return true
	}
	return false
}
