package hostconfig

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

func TestFindSSHD(t *testing.T) {
	want := testenv.RequireBinary(t, "sshd")
	got, err := FindSSHD()
	if err != nil {
		t.Fatalf("FindSSHD: %v", err)
	}
	gotSt, err := os.Stat(got)
	if err != nil {
		t.Fatal(err)
	}
	wantSt, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(gotSt, wantSt) {
		t.Errorf("FindSSHD = %s, want %s", got, want)
	}
}

func TestCheckWithSSHD(t *testing.T) {
	sshd := testenv.RequireBinary(t, "sshd")
	testenv.EnsurePrivsepDir(t)

	tests := []struct {
		name    string
		breakIt func(t *testing.T, f Files) string // returns the drop-in path to check
		want    error                              // nil: the check passes
		wantMsg string
	}{
		{
			name:    "good files",
			breakIt: func(_ *testing.T, f Files) string { return f.DropInPath() },
		},
		{
			name: "unknown keyword",
			breakIt: func(t *testing.T, f Files) string {
				appendTo(t, f.DropInPath(), "PermitRootLoginn yes\n")
				return f.DropInPath()
			},
			want:    ErrSSHDRejected,
			wantMsg: "Bad configuration option",
		},
		{
			name: "bad value",
			breakIt: func(t *testing.T, f Files) string {
				appendTo(t, f.DropInPath(), "PubkeyAuthentication maybe\n")
				return f.DropInPath()
			},
			want:    ErrSSHDRejected,
			wantMsg: "maybe",
		},
		{
			name: "keyword commented out",
			breakIt: func(t *testing.T, f Files) string {
				replaceIn(t, f.DropInPath(), "RevokedKeys", "#RevokedKeys")
				return f.DropInPath()
			},
			want:    ErrSSHDRejected,
			wantMsg: "does not set RevokedKeys",
		},
		{
			name: "KRL missing",
			breakIt: func(t *testing.T, f Files) string {
				if err := os.Remove(f.KRLPath()); err != nil {
					t.Fatal(err)
				}
				return f.DropInPath()
			},
			want:    fs.ErrNotExist,
			wantMsg: "RevokedKeys",
		},
		{
			name: "KRL not a KRL",
			breakIt: func(t *testing.T, f Files) string {
				if err := os.WriteFile(f.KRLPath(), []byte("garbage\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return f.DropInPath()
			},
			want:    ErrInvalidFiles,
			wantMsg: "not an OpenSSH KRL",
		},
		{
			name: "CA keys not keys",
			breakIt: func(t *testing.T, f Files) string {
				if err := os.WriteFile(f.CAKeysPath(), []byte("# comment\nnot a key\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return f.DropInPath()
			},
			want:    ErrSSHDRejected,
			wantMsg: "line 2",
		},
		{
			name: "CA keys empty",
			breakIt: func(t *testing.T, f Files) string {
				if err := os.WriteFile(f.CAKeysPath(), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return f.DropInPath()
			},
			want:    ErrSSHDRejected,
			wantMsg: "holds no key",
		},
		{
			// sshd itself accepts an Include that matches no file.
			name: "drop-in missing",
			breakIt: func(t *testing.T, f Files) string {
				if err := os.Remove(f.DropInPath()); err != nil {
					t.Fatal(err)
				}
				return f.DropInPath()
			},
			want: fs.ErrNotExist,
		},
		{
			name:    "relative drop-in",
			breakIt: func(*testing.T, Files) string { return "jit-ssh.conf" },
			want:    ErrInvalidPath,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := validFiles(t)
			if _, err := Write(f); err != nil {
				t.Fatalf("Write: %v", err)
			}
			dropIn := tt.breakIt(t, f)
			err := CheckWithSSHD(context.Background(), sshd, dropIn)
			t.Logf("CheckWithSSHD: %v", err)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("CheckWithSSHD: %v, want nil", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("CheckWithSSHD: err = %v, want %v", err, tt.want)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("CheckWithSSHD: err = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestCheckWithSSHDCancelled(t *testing.T) {
	sshd := testenv.RequireBinary(t, "sshd")
	f := validFiles(t)
	if _, err := Write(f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := CheckWithSSHD(ctx, sshd, f.DropInPath()); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckWithSSHD with a cancelled context: err = %v, want %v", err, context.Canceled)
	}
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, text...), 0o644); err != nil {
		t.Fatal(err)
	}
}

func replaceIn(t *testing.T, path, from, to string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "\n"+from, "\n"+to, 1)
	if s == string(b) {
		t.Fatalf("%s does not contain a line starting %q", path, from)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
