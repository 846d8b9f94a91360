package ca

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultSkew is how far ValidAfter is backdated to absorb clock skew
// between the CA and hosts.
const DefaultSkew = 2 * time.Minute

// KeyID builds the certificate KeyId that sshd logs with every login:
// jit-ssh:user=<login>:group=<group>:req=<request-id>:by=<a>[,<b>]. An
// auto-approved grant (approvals_required 0) has by=- since "-" is never a
// valid requester: a login, or a workload's requester name (see
// Workload.Requester), so a workload's KeyIds read
// jit-ssh:user=gha:<owner>/<repo>:run=<run id>:group=...: the host's log
// names the workflow run. Every part is checked, so the KeyId cannot be
// forged from a crafted name. A break-glass grant's certificates carry
// by=break-glass (BreakGlassKeyID).
func KeyID(user, group, requestID string, approvers []string) (string, error) {
	return keyID(user, group, requestID, approvers, false)
}

// BreakGlassBy is the by= field of a break-glass grant's KeyId: no approver
// took part. (The ledger, not the KeyId, is authoritative: its certificate
// record has no approvers and its request is marked break_glass.)
const BreakGlassBy = "break-glass"

// BreakGlassKeyID is KeyID for a break-glass grant: by=break-glass.
func BreakGlassKeyID(user, group, requestID string) (string, error) {
	return keyID(user, group, requestID, nil, true)
}

func keyID(user, group, requestID string, approvers []string, breakGlass bool) (string, error) {
	if err := CheckRequester(user); err != nil {
		return "", err
	}
	if err := CheckGroup(group); err != nil {
		return "", err
	}
	if err := CheckRequestID(requestID); err != nil {
		return "", err
	}
	by := "-"
	switch {
	case breakGlass:
		by = BreakGlassBy
	case len(approvers) > 0:
		for _, a := range approvers {
			if err := CheckLogin(a); err != nil {
				return "", err
			}
			if IsReservedLogin(a) {
				// by=break-glass must only ever mean a break-glass grant.
				return "", fmt.Errorf("%w: approver %q is a reserved login", ErrInvalidName, a)
			}
		}
		by = strings.Join(approvers, ",")
	}
	return fmt.Sprintf("jit-ssh:user=%s:group=%s:req=%s:by=%s", user, group, requestID, by), nil
}

// KeyIDFields parses a KeyId built by KeyID or BreakGlassKeyID (whose
// approvers are then [BreakGlassBy]). It returns ok=false for any other
// string: one whose fields are not the names KeyID checks, or that KeyID
// would not have written exactly so.
func KeyIDFields(keyID string) (user, group, requestID string, approvers []string, ok bool) {
	user, group, requestID, approvers, ok = splitKeyID(keyID)
	if !ok {
		return "", "", "", nil, false
	}
	var rebuilt string
	var err error
	if len(approvers) == 1 && approvers[0] == BreakGlassBy {
		rebuilt, err = BreakGlassKeyID(user, group, requestID)
	} else {
		rebuilt, err = KeyID(user, group, requestID, approvers)
	}
	if err != nil || rebuilt != keyID {
		return "", "", "", nil, false
	}
	return user, group, requestID, approvers, true
}

// splitKeyID splits a KeyId into its fields without checking them.
func splitKeyID(keyID string) (user, group, requestID string, approvers []string, ok bool) {
	rest, found := strings.CutPrefix(keyID, "jit-ssh:")
	if !found {
		return "", "", "", nil, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) == 6 {
		// A workload's user, gha:<owner>/<repo>:run=<id>, holds two colons.
		u := strings.Join(parts[:3], ":")
		if CheckRequester(strings.TrimPrefix(u, "user=")) != nil || !IsWorkloadRequester(strings.TrimPrefix(u, "user=")) {
			return "", "", "", nil, false
		}
		parts = append([]string{u}, parts[3:]...)
	}
	if len(parts) != 4 {
		return "", "", "", nil, false
	}
	vals := make([]string, 4)
	for i, key := range []string{"user", "group", "req", "by"} {
		v, found := strings.CutPrefix(parts[i], key+"=")
		if !found {
			return "", "", "", nil, false
		}
		vals[i] = v
	}
	if vals[3] != "-" {
		approvers = strings.Split(vals[3], ",")
	}
	return vals[0], vals[1], vals[2], approvers, true
}

// Template builds the unsigned certificate of SPEC section 6 for subject
// under grant g at time now: user type, exactly the group's principals,
// ValidAfter backdated by skew, ValidBefore = min(now+cert_ttl, grant end),
// the evidence KeyId, a random non-zero serial, and only the extensions and
// critical options of the group's policy.
func Template(g Grant, subject ssh.PublicKey, now time.Time, skew time.Duration, rnd io.Reader) (*ssh.Certificate, error) {
	if len(g.Profile.Principals) == 0 {
		return nil, fmt.Errorf("ca: host group %q has no principals", g.Group)
	}
	for _, p := range g.Profile.Principals {
		if err := CheckPrincipal(p); err != nil {
			return nil, err
		}
	}
	if g.Profile.CertTTL <= 0 {
		return nil, fmt.Errorf("ca: host group %q has no cert_ttl", g.Group)
	}
	if !now.Before(g.Ends) {
		return nil, ErrGrantEnded
	}
	keyID, err := KeyID(g.User, g.Group, g.RequestID, g.Approvers)
	if g.BreakGlass {
		keyID, err = BreakGlassKeyID(g.User, g.Group, g.RequestID)
	}
	if err != nil {
		return nil, err
	}
	serial, err := RandomSerial(rnd)
	if err != nil {
		return nil, err
	}
	before := now.Add(g.Profile.CertTTL)
	if g.Ends.Before(before) {
		before = g.Ends
	}
	cert := &ssh.Certificate{
		Key:             subject,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           keyID,
		ValidPrincipals: slices.Clone(g.Profile.Principals),
		ValidAfter:      unixSeconds(now.Add(-skew)),
		ValidBefore:     unixSeconds(before),
		Permissions: ssh.Permissions{
			CriticalOptions: map[string]string{},
			Extensions:      map[string]string{},
		},
	}
	for _, e := range g.Profile.Extensions {
		cert.Extensions[e] = ""
	}
	if len(g.Profile.SourceAddress) > 0 {
		cert.CriticalOptions["source-address"] = strings.Join(g.Profile.SourceAddress, ",")
	}
	return cert, nil
}

// RandomSerial returns a random serial in [1, 2^63): unique in practice, and
// the ledger's unique index turns the rare collision into a refused issuance
// rather than a duplicate.
func RandomSerial(rnd io.Reader) (uint64, error) {
	var b [8]byte
	for {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return 0, fmt.Errorf("ca: reading random serial: %w", err)
		}
		if s := binary.BigEndian.Uint64(b[:]) >> 1; s != 0 {
			return s, nil
		}
	}
}

// unixSeconds clamps t to the certificate's uint64 seconds range.
func unixSeconds(t time.Time) uint64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint64(s)
}

// CertTime converts a certificate timestamp to time.Time, mapping the
// "forever" value to the largest representable time.
func CertTime(s uint64) time.Time {
	if s > uint64(1<<62) {
		return time.Unix(1<<62, 0).UTC()
	}
	return time.Unix(int64(s), 0).UTC()
}
