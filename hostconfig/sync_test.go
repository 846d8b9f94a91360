package hostconfig

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// fakeSource is what a jit-ssh server (or a broken one) answers.
type fakeSource struct {
	keys    []ssh.PublicKey
	keysErr error
	krl     []byte
	krlErr  error
}

func (s fakeSource) CAKeys(context.Context) ([]ssh.PublicKey, error) { return s.keys, s.keysErr }
func (s fakeSource) KRL(context.Context) ([]byte, error)             { return s.krl, s.krlErr }

// syncedFiles writes host files and syncs them once to KRL version 5, so
// every case starts from a known last good state.
func syncedFiles(t *testing.T) (Files, fakeSource) {
	t.Helper()
	f := validFiles(t)
	if _, err := Write(f); err != nil {
		t.Fatal(err)
	}
	good := fakeSource{keys: f.CAKeys, krl: ca.MarshalKRL(5, time.Unix(1700000100, 0), "jit-ssh",
		[]ca.RevokedSerials{{CA: f.CAKeys[0], Serials: []uint64{42}}})}
	res, err := Sync(t.Context(), f.Dir, good)
	if err != nil {
		t.Fatalf("first sync: %v", err)
	}
	if res.KRLVersion != 5 || !res.KRLChanged || res.CAChanged || res.CAKeys != 2 {
		t.Fatalf("first sync = %+v, want KRL version 5 installed and the CA keys unchanged", res)
	}
	return f, good
}

func readAll(t *testing.T, f Files) (caKeys, krl []byte) {
	t.Helper()
	caKeys, err := os.ReadFile(f.CAKeysPath())
	if err != nil {
		t.Fatal(err)
	}
	krl, err = os.ReadFile(f.KRLPath())
	if err != nil {
		t.Fatal(err)
	}
	return caKeys, krl
}

func TestSyncKeepsLastGoodFiles(t *testing.T) {
	down := errors.New("connection refused")
	tests := []struct {
		name    string
		src     func(good fakeSource, f Files) fakeSource
		want    error
		wantMsg string
	}{
		{"server down (CA keys)", func(g fakeSource, _ Files) fakeSource { g.keysErr = down; return g }, down, "fetching CA keys (kept the last good files)"},
		{"server down (KRL)", func(g fakeSource, _ Files) fakeSource { g.krlErr = down; return g }, down, "fetching the KRL (kept the last good files)"},
		{"no CA key", func(g fakeSource, _ Files) fakeSource { g.keys = nil; return g }, ErrInvalidFiles, "no CA key"},
		{"nil CA key", func(g fakeSource, _ Files) fakeSource { g.keys = []ssh.PublicKey{nil}; return g }, ErrInvalidFiles, "empty CA key"},
		{"certificate as CA key", func(g fakeSource, f Files) fakeSource {
			g.keys = []ssh.PublicKey{&ssh.Certificate{Key: f.CAKeys[0], CertType: ssh.UserCert}}
			return g
		}, ErrInvalidFiles, "certificate as a CA key"},
		{"garbage KRL", func(g fakeSource, _ Files) fakeSource {
			g.krl = []byte("<html>502 Bad Gateway</html>")
			return g
		}, ca.ErrBadKRL, "KRL is unusable"},
		{"empty KRL body", func(g fakeSource, _ Files) fakeSource { g.krl = nil; return g }, ca.ErrBadKRL, "KRL is unusable"},
		{"truncated KRL", func(g fakeSource, _ Files) fakeSource { g.krl = g.krl[:len(g.krl)-3]; return g }, ca.ErrBadKRL, "KRL is unusable"},
		// A newer, well-framed KRL that OpenSSH cannot parse: installed, it
		// would lock every certificate out (finding 4 of issue 13).
		{"garbage in a certificates section", func(g fakeSource, _ Files) fakeSource {
			g.krl = append(ca.MarshalKRL(6, time.Now(), "jit-ssh", nil), 1, 0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef)
			return g
		}, ca.ErrBadKRL, "section 1 (type 1)"},
		{"unknown certificate subsection", func(g fakeSource, f Files) fakeSource {
			krl := ca.MarshalKRL(6, time.Now(), "jit-ssh", []ca.RevokedSerials{{CA: f.CAKeys[0], Serials: []uint64{42}}})
			krl[len(krl)-8-4-1] = 0x99 // the serial list's type
			g.krl = krl
			return g
		}, ca.ErrBadKRL, "subsection 1 (type 0x99)"},
		{"serial 0 in a serial list", func(g fakeSource, f Files) fakeSource {
			krl := ca.MarshalKRL(6, time.Now(), "jit-ssh", []ca.RevokedSerials{{CA: f.CAKeys[0], Serials: []uint64{42}}})
			copy(krl[len(krl)-8:], make([]byte, 8))
			g.krl = krl
			return g
		}, ca.ErrBadKRL, "serial 0"},
		{"garbage in a signature section", func(g fakeSource, _ Files) fakeSource {
			g.krl = append(ca.MarshalKRL(6, time.Now(), "jit-ssh", nil), 4, 0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef)
			return g
		}, ca.ErrBadKRL, "section 1 (type 4)"},
		{"garbage in a SHA256 section", func(g fakeSource, _ Files) fakeSource {
			g.krl = append(ca.MarshalKRL(6, time.Now(), "jit-ssh", nil), 5, 0, 0, 0, 5, 0, 0, 0, 1, 0xde)
			return g
		}, ca.ErrBadKRL, "a hash of 1 bytes, want 32"},
		{"older KRL", func(g fakeSource, _ Files) fakeSource {
			g.krl = ca.MarshalKRL(4, time.Now(), "jit-ssh", nil)
			return g
		}, ErrStaleKRL, "offers version 4, this host has 5"},
		{"older KRL and new CA keys", func(g fakeSource, _ Files) fakeSource {
			g.keys = []ssh.PublicKey{testKey(t)}
			g.krl = ca.MarshalKRL(0, time.Now(), "jit-ssh", nil)
			return g
		}, ErrStaleKRL, "kept the local one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, good := syncedFiles(t)
			wantCA, wantKRL := readAll(t, f)
			st, err := os.Stat(f.KRLPath())
			if err != nil {
				t.Fatal(err)
			}
			res, err := Sync(t.Context(), f.Dir, tt.src(good, f))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Sync = %+v, %v; want an error wrapping %v saying %q", res, err, tt.want, tt.wantMsg)
			}
			gotCA, gotKRL := readAll(t, f)
			if !bytes.Equal(gotCA, wantCA) || !bytes.Equal(gotKRL, wantKRL) {
				t.Errorf("a failed sync changed the files:\nca.pub %q -> %q\nrevoked.krl %x -> %x", wantCA, gotCA, wantKRL, gotKRL)
			}
			st2, err := os.Stat(f.KRLPath())
			if err != nil {
				t.Fatal(err)
			}
			if !st2.ModTime().Equal(st.ModTime()) {
				t.Errorf("a failed sync touched the KRL's modification time (%v -> %v): doctor would think the sync works", st.ModTime(), st2.ModTime())
			}
			assertNoTempFiles(t, f.Dir)
		})
	}
}

func TestSyncInstallsNewerFiles(t *testing.T) {
	f, _ := syncedFiles(t)
	rotated := []ssh.PublicKey{f.CAKeys[1], testKey(t)}
	newer := ca.MarshalKRL(9, time.Unix(1700000200, 0), "jit-ssh", []ca.RevokedSerials{{CA: rotated[1], Serials: []uint64{7}}})
	synced := time.Unix(1700000300, 0)
	res, err := Sync(t.Context(), f.Dir, fakeSource{keys: rotated, krl: newer}, WithSyncClock(func() time.Time { return synced }))
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if !res.CAChanged || !res.KRLChanged || res.KRLVersion != 9 || res.PreviousKRLV != 5 || res.CAKeys != 2 {
		t.Errorf("Sync = %+v, want both files replaced, KRL 5 -> 9", res)
	}
	gotCA, gotKRL := readAll(t, f)
	wantCA := append(ssh.MarshalAuthorizedKey(rotated[0]), ssh.MarshalAuthorizedKey(rotated[1])...)
	if !bytes.Equal(gotCA, wantCA) || !bytes.Equal(gotKRL, newer) {
		t.Errorf("files after sync: ca.pub %q, krl %x; want the server's", gotCA, gotKRL)
	}
	st, err := os.Stat(f.KRLPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 || !st.ModTime().Equal(synced) {
		t.Errorf("revoked.krl mode %v, mtime %v; want 0644 and the sync time %v", st.Mode().Perm(), st.ModTime(), synced)
	}

	// The same answer again: nothing replaced, but the sync is recorded.
	again := synced.Add(time.Minute)
	res, err = Sync(t.Context(), f.Dir, fakeSource{keys: rotated, krl: newer}, WithSyncClock(func() time.Time { return again }))
	if err != nil || res.CAChanged || res.KRLChanged || res.KRLVersion != 9 {
		t.Errorf("second Sync = %+v, %v; want nothing replaced", res, err)
	}
	if st, err := os.Stat(f.KRLPath()); err != nil || !st.ModTime().Equal(again) {
		t.Errorf("after an unchanged sync the KRL's mtime is %v (%v), want %v", st.ModTime(), err, again)
	}

	// An equal version with other content (expired serials dropped) is fine.
	same := ca.MarshalKRL(9, time.Unix(1700000400, 0), "jit-ssh", nil)
	if res, err := Sync(t.Context(), f.Dir, fakeSource{keys: rotated, krl: same}); err != nil || !res.KRLChanged {
		t.Errorf("Sync of an equal-version KRL = %+v, %v; want it installed", res, err)
	}
	// An older one only when allowed.
	older := ca.MarshalKRL(1, time.Now(), "jit-ssh", nil)
	if _, err := Sync(t.Context(), f.Dir, fakeSource{keys: rotated, krl: older}); !errors.Is(err, ErrStaleKRL) {
		t.Errorf("Sync of an older KRL = %v, want ErrStaleKRL", err)
	}
	if res, err := Sync(t.Context(), f.Dir, fakeSource{keys: rotated, krl: older}, AllowOlderKRL()); err != nil || res.KRLVersion != 1 {
		t.Errorf("Sync with AllowOlderKRL = %+v, %v; want version 1 installed", res, err)
	}
	assertNoTempFiles(t, f.Dir)
}

func TestSyncReplacesCorruptLocalKRL(t *testing.T) {
	f, good := syncedFiles(t)
	if err := os.WriteFile(f.KRLPath(), []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Sync(t.Context(), f.Dir, good)
	if err != nil || !res.KRLChanged || res.PreviousKRLV != 0 {
		t.Fatalf("Sync over a corrupt KRL = %+v, %v; want it replaced", res, err)
	}
	if _, krl := readAll(t, f); !bytes.Equal(krl, good.krl) {
		t.Errorf("revoked.krl = %x, want the server's", krl)
	}
}

func TestSyncMissingKRL(t *testing.T) {
	f, good := syncedFiles(t)
	if err := os.Remove(f.KRLPath()); err != nil {
		t.Fatal(err)
	}
	_, err := Sync(t.Context(), f.Dir, fakeSource{keys: good.keys, krlErr: errors.New("timeout")})
	if err == nil || !strings.Contains(err.Error(), "is missing, so sshd refuses every certificate") {
		t.Errorf("Sync with no local KRL and a failing server = %v; want it to say the KRL is missing", err)
	}
	if _, err := Sync(t.Context(), f.Dir, good); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if _, krl := readAll(t, f); !bytes.Equal(krl, good.krl) {
		t.Errorf("revoked.krl = %x, want the server's", krl)
	}
}

func TestSyncRefusesBadDir(t *testing.T) {
	good := fakeSource{keys: []ssh.PublicKey{testKey(t)}, krl: EmptyKRL(1, time.Now())}
	for _, dir := range []string{"", "relative/dir", "/tmp/has space", testDir(t)} {
		if _, err := Sync(t.Context(), dir, good); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Sync(%q) = %v, want ErrInvalidPath", dir, err)
		}
	}
}
