package approval

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// GetCertificate returns the certificate with serial (decimal, as the
// caller wrote it) if login may see it: its requester, or an auditor. To
// anyone else it does not exist. It needs WithLedger.
func (a *Authority) GetCertificate(ctx context.Context, login, serial string) (*ca.Certificate, error) {
	n, err := strconv.ParseUint(serial, 10, 64)
	if err != nil {
		return nil, invalidInput("serial must be a decimal number")
	}
	c, err := a.certs.GetCertificate(ctx, n)
	if err != nil {
		return nil, err
	}
	if c.Requester != login {
		if ok, err := a.svc.IsAuditor(ctx, login); err != nil {
			return nil, err
		} else if !ok {
			return nil, newErr(ErrNotFound, "not_found", "no certificate %s", serial)
		}
	}
	return c, nil
}

// ListCertificates calls fn for each certificate matching f that login may
// see, streaming: auditors see everyone's, others only their own, and a
// non-auditor filtering on another user is refused before anything is
// listed. It needs WithLedger.
func (a *Authority) ListCertificates(ctx context.Context, login string, f ca.CertFilter, fn func(*ca.Certificate) error) error {
	narrow, err := a.auditorOrOwn(ctx, login, f.User, "only auditors may list other users' certificates")
	if err != nil {
		return err
	}
	if narrow {
		f.User = login
	}
	return a.certs.ListCertificates(ctx, f, fn)
}

// CAKeys returns the CA public keys hosts should trust: the signer's,
// current first, then the extra trusted ones, each once. It needs
// WithSigner; a signer that cannot answer is ca.ErrSignerUnavailable.
func (a *Authority) CAKeys(ctx context.Context) ([]ssh.PublicKey, error) {
	keys, err := a.signer.PublicKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ca.ErrSignerUnavailable, err)
	}
	var out []ssh.PublicKey
	seen := map[string]bool{}
	for _, k := range slices.Concat(keys, a.trusted) {
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
		if !seen[line] {
			seen[line] = true
			out = append(out, k)
		}
	}
	return out, nil
}

// HostGroup returns the policy of group for publishing: hosts ask for a
// group's principals to configure sshd (the caller shows only the name and
// principals; teams and limits stay private). An unknown or malformed name
// is not found, without the list of known groups.
func (a *Authority) HostGroup(group string) (*Policy, error) {
	p := a.svc.Policy(group)
	if ca.CheckGroup(group) != nil || p == nil {
		return nil, newErr(ErrNotFound, CodeUnknownHostGroup, "unknown host group %q", group)
	}
	return p, nil
}
