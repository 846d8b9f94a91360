package hostconfig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

func TestEmptyKRLBytes(t *testing.T) {
	tests := []struct {
		name      string
		version   uint64
		generated time.Time
		want      string
	}{
		{
			name:      "version 0",
			generated: time.Unix(0x6b041d53, 0),
			want: "5353484b524c0a00" + "00000001" + "0000000000000000" + "000000006b041d53" +
				"0000000000000000" + "00000000" + "00000000",
		},
		{
			name:      "version 7, date before the epoch",
			version:   7,
			generated: time.Unix(-5, 0),
			want: "5353484b524c0a00" + "00000001" + "0000000000000007" + "0000000000000000" +
				"0000000000000000" + "00000000" + "00000000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(EmptyKRL(tt.version, tt.generated)); got != tt.want {
				t.Errorf("EmptyKRL = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCheckKRLHeader(t *testing.T) {
	good := EmptyKRL(3, time.Now())
	badVersion := bytes.Clone(good)
	binary.BigEndian.PutUint32(badVersion[8:], 2)
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"empty KRL", good, true},
		{"with sections", append(bytes.Clone(good), 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0), true},
		{"empty certificates section (OpenSSH refuses it)", append(bytes.Clone(good), 1, 0, 0, 0, 0), false},
		{"nothing", nil, false},
		{"truncated", good[:20], false},
		{"bad magic", append([]byte("SSHKRX\n\x00"), good[8:]...), false},
		{"format version 2", badVersion, false},
		{"public key", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKRLHeader(tt.data)
			if tt.ok && err != nil {
				t.Errorf("CheckKRLHeader: %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidFiles) {
				t.Errorf("CheckKRLHeader: err = %v, want %v", err, ErrInvalidFiles)
			}
		})
	}
}

// TestEmptyKRLWithSSHKeygen checks EmptyKRL against the real ssh-keygen: it
// accepts our KRL and finds a key not revoked, and its own empty KRL has
// exactly our bytes.
func TestEmptyKRLWithSSHKeygen(t *testing.T) {
	keygen := testenv.RequireBinary(t, "ssh-keygen")
	dir := t.TempDir()

	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "some.pub")
	if err := os.WriteFile(pubPath, ssh.MarshalAuthorizedKey(key), 0o644); err != nil {
		t.Fatal(err)
	}
	krlPath := filepath.Join(dir, "revoked.krl")
	if err := os.WriteFile(krlPath, EmptyKRL(0, time.Now()), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(keygen, "-Q", "-f", krlPath, pubPath).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -Q on EmptyKRL: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), ": ok") {
		t.Errorf("ssh-keygen -Q output = %q, want the key reported ok (not revoked)", out)
	}

	// ssh-keygen -k with no keys writes an empty KRL; ours must match it
	// byte for byte once the generated date is the same.
	theirsPath := filepath.Join(dir, "theirs.krl")
	if out, err := exec.Command(keygen, "-k", "-f", theirsPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -k: %v\n%s", err, out)
	}
	theirs, err := os.ReadFile(theirsPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(theirs) < 28 {
		t.Fatalf("ssh-keygen's KRL is %d bytes: %x", len(theirs), theirs)
	}
	date := time.Unix(int64(binary.BigEndian.Uint64(theirs[20:28])), 0)
	if ours := EmptyKRL(0, date); !bytes.Equal(ours, theirs) {
		t.Errorf("EmptyKRL = %x\nssh-keygen -k = %x", ours, theirs)
	}
}
