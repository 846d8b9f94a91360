package hostconfig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// textSource answers like a jit-ssh server: the CA keys as the
// authorized_keys lines of GET /v1/ca, parsed the way `host sync` parses
// them, and the KRL bytes of GET /v1/krl.
type textSource struct {
	caLines []string
	krl     []byte
}

func (s textSource) CAKeys(context.Context) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for _, line := range s.caLines {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("the server sent an unreadable CA key: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (s textSource) KRL(context.Context) ([]byte, error) { return s.krl, nil }

// FuzzSync feeds host sync fuzzed CA key lines and KRL bytes and checks
// what a host relies on: on failure the last good files are untouched; on
// success the KRL in place is exactly the download, parses, is not older,
// and ca.pub holds plain keys sshd reads.
func FuzzSync(f *testing.F) {
	seedKey := func(b byte) ssh.PublicKey {
		k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)).Public())
		if err != nil {
			f.Fatal(err)
		}
		return k
	}
	oldCA, newCA := seedKey(1), seedKey(2)
	line := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
	gen := time.Unix(1700000000, 0)
	localKRL := ca.MarshalKRL(5, gen, "jit-ssh", []ca.RevokedSerials{{CA: oldCA, Serials: []uint64{42}}})
	localCA := ssh.MarshalAuthorizedKey(oldCA)

	newer := ca.MarshalKRL(6, gen, "jit-ssh", []ca.RevokedSerials{{CA: newCA, Serials: []uint64{1, 2}}})
	f.Add(line(oldCA), newer)
	f.Add(line(oldCA)+"\n"+line(newCA), newer)
	f.Add(line(newCA), localKRL)
	f.Add(line(oldCA), ca.MarshalKRL(4, gen, "", nil)) // older
	f.Add(line(oldCA), newer[:len(newer)-3])           // truncated
	f.Add("", newer)                                   // no CA key
	f.Add("not a key", newer)
	f.Add(`command="x" `+line(oldCA), newer)
	f.Add(line(oldCA), append(slices.Clone(newer), 9, 0, 0, 0, 0)) // unknown section type
	f.Add(line(oldCA), []byte{})

	// Sync refuses paths sshd_config cannot take, such as the '#' of
	// t.TempDir's names under the fuzzer; the base is plain.
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, caText string, krl []byte) {
		dir, err := os.MkdirTemp(base, "host")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		krlPath, caPath := filepath.Join(dir, KRLName), filepath.Join(dir, CAKeysName)
		if err := os.WriteFile(krlPath, localKRL, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(caPath, localCA, 0o644); err != nil {
			t.Fatal(err)
		}
		var lines []string
		if caText != "" {
			lines = strings.Split(caText, "\n")
		}
		res, err := Sync(context.Background(), dir, textSource{caLines: lines, krl: krl})
		gotKRL, rerr := os.ReadFile(krlPath)
		if rerr != nil {
			t.Fatalf("the KRL is gone after sync (err %v): %v", err, rerr)
		}
		gotCA, rerr := os.ReadFile(caPath)
		if rerr != nil {
			t.Fatalf("ca.pub is gone after sync (err %v): %v", err, rerr)
		}
		if err != nil {
			if !bytes.Equal(gotKRL, localKRL) || !bytes.Equal(gotCA, localCA) {
				t.Fatalf("a failed sync (%v) changed the last good files", err)
			}
			if !errors.Is(err, ErrInvalidFiles) && !errors.Is(err, ErrStaleKRL) && !strings.Contains(err.Error(), "unreadable CA key") {
				t.Fatalf("sync error %v says neither what was wrong nor that the files were kept", err)
			}
			return
		}
		if !bytes.Equal(gotKRL, krl) {
			t.Fatalf("the KRL in place is not the one downloaded")
		}
		h, herr := ca.ParseKRLHeader(gotKRL)
		if herr != nil || h.Version < 5 || h.Version != res.KRLVersion {
			t.Fatalf("the KRL in place: %+v, %v; result says version %d", h, herr, res.KRLVersion)
		}
		if err := checkCAKeysFile(caPath); err != nil {
			t.Fatalf("ca.pub after sync: %v", err)
		}
		n := 0
		for rest := gotCA; len(bytes.TrimSpace(rest)) > 0; n++ {
			k, _, _, r, err := ssh.ParseAuthorizedKey(rest)
			if err != nil {
				t.Fatalf("ca.pub line %d: %v", n+1, err)
			}
			if _, isCert := k.(*ssh.Certificate); isCert {
				t.Fatalf("ca.pub holds a certificate")
			}
			rest = r
		}
		if n != len(lines) || n != res.CAKeys || n == 0 {
			t.Fatalf("ca.pub holds %d keys, the server sent %d, the result says %d", n, len(lines), res.CAKeys)
		}
	})
}
