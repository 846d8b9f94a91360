package sqlite

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/store"
)

// BenchmarkCertificateBinding is the CPU the row bindings add to one
// issuance: the certificate row's digest (for its event's data) and the
// event row's MAC. The ledger write it rides on costs a few hundred
// microseconds (BenchmarkInsertCertificateParallel).
func BenchmarkCertificateBinding(b *testing.B) {
	key := make([]byte, 32)
	now := time.Now()
	cert := "ssh-ed25519-cert-v01@openssh.com " + strings.Repeat("AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t", 18)
	var i uint64
	for b.Loop() {
		i++
		row := certRow{
			Serial: strconv.FormatUint(i, 10), KeyID: "jit-ssh:user=alice:group=prod-db:req=r-aaaaaaaaaaaaaaaa:by=bob", HostGroup: "prod-db",
			Principals: `["prod-db"]`, ValidAfter: now.UnixNano(), ValidBefore: now.UnixNano(), Requester: "alice", RequestID: "r-aaaaaaaaaaaaaaaa",
			Approvers: `["bob"]`, Fingerprint: "SHA256:subject", CAFingerprint: "SHA256:ca", Certificate: cert, IssuedAt: now.UnixNano(),
		}
		_ = store.EventMAC(key, int64(i), row.Digest()) //nolint:gosec // small
	}
}
