package sqlite_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	oexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkpointedLedger returns a ledger of 6 events with a checkpoint of row
// 6, reopened with the checkpoint signer, and the signer.
func checkpointedLedger(t *testing.T) (*sqlite.DB, string, ssh.Signer) {
	t.Helper()
	signer := newSigner(t)
	first, path, _ := ledgerWithEvents(t, sqlite.WithCheckpointSigner(signer))
	first.Close() // one writer at a time: the ledger is locked while open
	db, err := sqlite.Open(t.Context(), path, sqlite.WithCheckpointSigner(signer), sqlite.WithClock(func() time.Time { return t0.Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cp, err := db.Checkpoint(t.Context())
	if err != nil || cp == nil {
		t.Fatalf("Checkpoint = %+v, %v; want a checkpoint", cp, err)
	}
	if cp.Row != 6 {
		t.Fatalf("checkpoint row = %d, want 6", cp.Row)
	}
	return db, path, signer
}

func wantChainError(t *testing.T, err error, row int64, reason string) {
	t.Helper()
	var ce *store.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("Verify = %v, want a *store.ChainError at row %d", err, row)
	}
	if ce.Row != row || !strings.Contains(ce.Reason, reason) {
		t.Errorf("ChainError = row %d %q, want row %d and %q", ce.Row, ce.Reason, row, reason)
	}
}

func TestCheckpoint(t *testing.T) {
	ctx := t.Context()
	db, path, signer := checkpointedLedger(t)

	t.Run("nothing new, no new checkpoint", func(t *testing.T) {
		cp, err := db.Checkpoint(ctx)
		if err != nil || cp != nil {
			t.Errorf("second Checkpoint without new events = %+v, %v; want nil, nil", cp, err)
		}
	})
	t.Run("untouched ledger verifies with its checkpoints", func(t *testing.T) {
		if err := db.RecordEvent(ctx, ca.Event{Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil { // row 7, unanchored
			t.Fatal(err)
		}
		res, err := db.Verify(ctx)
		if err != nil {
			t.Fatalf("Verify = %v", err)
		}
		want := ca.VerifyResult{Rows: 7, Checkpoints: 1, SidecarCheckpoints: 1, LastCheckpointRow: 6, Unanchored: 1}
		if res.Rows != want.Rows || res.Checkpoints != want.Checkpoints || res.SidecarCheckpoints != want.SidecarCheckpoints ||
			res.LastCheckpointRow != want.LastCheckpointRow || res.Unanchored != want.Unanchored || !res.LastCheckpointAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("Verify = %+v, want %+v", res, want)
		}
		if len(res.CheckpointKeys) != 1 || res.CheckpointKeys[0] != ca.Fingerprint(signer.PublicKey()) {
			t.Errorf("checkpoint keys = %v, want the signer's", res.CheckpointKeys)
		}
	})
	t.Run("sidecar is private", func(t *testing.T) {
		st, err := os.Stat(path + sqlite.SidecarSuffix)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("sidecar mode = %04o, want 0600", st.Mode().Perm())
		}
	})
	t.Run("ssh-keygen accepts the signature", func(t *testing.T) {
		keygen := testenv.RequireBinary(t, "ssh-keygen")
		var cp store.Checkpoint
		if err := sqlite.ReadCheckpointFile(path+sqlite.SidecarSuffix, func(_ int, c store.Checkpoint) error { cp = c; return nil }); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		sig := filepath.Join(dir, "cp.sig")
		if err := os.WriteFile(sig, []byte(cp.Signature), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			msg  []byte
			ns   string
			good bool
		}{
			{cp.Message(), store.CheckpointNamespace, true},
			{[]byte(strings.Replace(string(cp.Message()), "row: 6", "row: 7", 1)), store.CheckpointNamespace, false},
			{cp.Message(), "file", false},
		} {
			cmd := oexec.Command(keygen, "-Y", "check-novalidate", "-n", tc.ns, "-s", sig)
			cmd.Stdin = strings.NewReader(string(tc.msg))
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.good {
				t.Errorf("ssh-keygen -Y check-novalidate -n %s on %q: err=%v, want ok=%v\n%s", tc.ns, tc.msg, err, tc.good, out)
			}
		}
	})
}

func TestCheckpointDetectsTruncation(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short (make test runs it): a tampering matrix, one ledger per case")
	}
	tests := []struct {
		name    string
		tamper  []string
		opts    func(path string) []sqlite.Option
		wantRow int64 // 0: the tamper goes unnoticed (documented limit)
		reason  string
	}{
		{name: "last two rows deleted", tamper: []string{`DELETE FROM events WHERE id > 4`}, wantRow: 5, reason: "ledger ends at row 4 but this checkpoint says the chain reached row 6"},
		{name: "every row deleted", tamper: []string{`DELETE FROM events`}, wantRow: 1, reason: "ledger ends at row 0"},
		{name: "tail and the ledger's checkpoints deleted: the sidecar still knows",
			tamper: []string{`DELETE FROM events WHERE id > 4`, `DELETE FROM checkpoints`}, wantRow: 5, reason: ".checkpoints line 1"},
		{name: "row edited and the whole chain rehashed", tamper: []string{`UPDATE events SET actor = 'mallory' WHERE id = 2`, "REHASH"},
			wantRow: 6, reason: "the chain was rewritten up to this row"},
		{name: "checkpoint moved back to hide a truncation", tamper: []string{`DELETE FROM events WHERE id > 4`,
			`UPDATE checkpoints SET event_id = 4, event_hash = (SELECT hash FROM events WHERE id = 4)`}, wantRow: 4, reason: "signature does not verify"},
		{name: "tail, checkpoints and sidecar all deleted: unnoticed without an off-host copy",
			tamper: []string{`DELETE FROM events WHERE id > 4`, `DELETE FROM checkpoints`, "RMSIDECAR"}, wantRow: 0},
		{name: "...but caught by the off-host copy of the sidecar",
			tamper: []string{`DELETE FROM events WHERE id > 4`, `DELETE FROM checkpoints`, "RMSIDECAR"},
			opts: func(path string) []sqlite.Option {
				return []sqlite.Option{sqlite.WithCheckpointFile(path + ".offhost")}
			}, wantRow: 5, reason: ".offhost line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path, signer := checkpointedLedger(t)
			db.Close()
			copyFile(t, path+sqlite.SidecarSuffix, path+".offhost")
			raw := rawDB(t, path)
			for _, q := range tt.tamper {
				switch q {
				case "REHASH":
					if err := sqlite.RehashChain(t.Context(), raw); err != nil {
						t.Fatal(err)
					}
				case "RMSIDECAR":
					if err := os.Remove(path + sqlite.SidecarSuffix); err != nil {
						t.Fatal(err)
					}
				default:
					exec(t, raw, q)
				}
			}
			opts := []sqlite.Option{sqlite.WithCheckpointKeys(signer.PublicKey())}
			if tt.opts != nil {
				opts = append(opts, tt.opts(path)...)
			}
			ro, err := sqlite.OpenReadOnly(t.Context(), path, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			_, err = ro.Verify(t.Context())
			if tt.wantRow == 0 {
				if err != nil {
					t.Errorf("Verify = %v; this case documents what goes unnoticed and expected no error", err)
				}
				return
			}
			wantChainError(t, err, tt.wantRow, tt.reason)
		})
	}
}

func TestCheckpointKeys(t *testing.T) {
	db, path, signer := checkpointedLedger(t)
	if err := db.RecordEvent(t.Context(), ca.Event{Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil {
		t.Fatal(err)
	}
	// A checkpoint by another key, as an attacker holding their own key
	// would add after truncating (once the server is stopped: the ledger
	// is locked while open).
	db.Close()
	mallory := newSigner(t)
	forger, err := sqlite.Open(t.Context(), path, sqlite.WithCheckpointSigner(mallory), sqlite.WithCheckpointFile("-"))
	if err != nil {
		t.Fatal(err)
	}
	forger.SkipTailCheck() // jit-ssh itself refuses: the newest checkpoint is by a key it does not trust
	if _, err := forger.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	forger.Close()

	t.Run("pinned key refuses the stranger's checkpoint", func(t *testing.T) {
		ro, err := sqlite.OpenReadOnly(t.Context(), path, sqlite.WithCheckpointKeys(signer.PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		_, err = ro.Verify(t.Context())
		wantChainError(t, err, 7, "signed by "+ca.Fingerprint(mallory.PublicKey())+", which is not a trusted checkpoint key")
	})
	t.Run("unpinned verify reports both keys", func(t *testing.T) {
		ro, err := sqlite.OpenReadOnly(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		res, err := ro.Verify(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.CheckpointKeys) != 2 {
			t.Errorf("checkpoint keys = %v, want the real and the stranger's", res.CheckpointKeys)
		}
	})
	t.Run("no signer, no checkpoint", func(t *testing.T) {
		plain, _ := openDB(t)
		if _, err := plain.Checkpoint(t.Context()); err == nil {
			t.Error("Checkpoint without a signer succeeded")
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
