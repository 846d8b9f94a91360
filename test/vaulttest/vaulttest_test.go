package vaulttest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/jit-ssh/jit-ssh/test/vaulttest"
)

func TestRepoRoot(t *testing.T) {
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "module github.com/jit-ssh/jit-ssh\n") {
		t.Fatalf("%s/go.mod is not the root module's", root)
	}
}

func TestServerLifecycle(t *testing.T) {
	srv := vaulttest.Start(t)
	c := srv.Client()
	ctx := context.Background()
	if !strings.HasPrefix(srv.Addr, "http://127.0.0.1:") || !strings.HasPrefix(srv.Token, "root-") {
		t.Fatalf("Addr %q, Token prefix %q", srv.Addr, srv.Token[:5])
	}
	if srv.UnsealKey() == "" {
		t.Fatal("no unseal key captured from dev mode's output")
	}
	if _, err := c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		t.Fatalf("root token: %v", err)
	}
	if err := c.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}

	t.Run("seal keeps data", func(t *testing.T) {
		srv.Seal()
		st, err := c.Sys().SealStatus()
		if err != nil || !st.Sealed {
			t.Fatalf("after Seal: %+v, %v", st, err)
		}
		srv.Unseal()
		if _, err := c.Sys().GetMountWithContext(ctx, "kv"); err != nil {
			t.Fatalf("mount lost over seal/unseal: %v", err)
		}
	})

	t.Run("pause hangs", func(t *testing.T) {
		srv.Pause()
		tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := c.Sys().HealthWithContext(tctx)
		srv.Resume()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("paused Vault: err = %v, want a timeout", err)
		}
		if _, err := c.Sys().HealthWithContext(ctx); err != nil {
			t.Fatalf("after Resume: %v", err)
		}
	})

	t.Run("stop refuses, restart is fresh", func(t *testing.T) {
		srv.Stop()
		if conn, err := net.Dial("tcp", strings.TrimPrefix(srv.Addr, "http://")); err == nil {
			conn.Close()
			t.Fatal("stopped Vault still accepts connections")
		}
		addr, tok := srv.Addr, srv.Token
		srv.Restart()
		if srv.Addr != addr || srv.Token != tok {
			t.Fatal("Restart changed the address or token")
		}
		if _, err := c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
			t.Fatalf("root token after restart: %v", err)
		}
		if m, err := c.Sys().GetMountWithContext(ctx, "kv"); err == nil {
			t.Fatalf("mount survived a restart of in-memory dev mode: %+v", m)
		}
	})
}

func TestServerTLS(t *testing.T) {
	srv := vaulttest.StartTLS(t)
	if !strings.HasPrefix(srv.Addr, "https://127.0.0.1:") {
		t.Fatalf("Addr %q, want https://127.0.0.1:<port>", srv.Addr)
	}
	if _, err := os.Stat(srv.CACert); err != nil {
		t.Fatalf("CACert: %v", err)
	}
	if _, err := srv.Client().Auth().Token().LookupSelfWithContext(context.Background()); err != nil {
		t.Fatalf("a client trusting CACert: %v", err)
	}
	t.Setenv("VAULT_CACERT", "")
	t.Setenv("VAULT_CAPATH", "")
	t.Setenv("VAULT_SKIP_VERIFY", "")
	cfg := api.DefaultConfig()
	cfg.Address = srv.Addr
	untrusting, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	untrusting.SetToken(srv.Token)
	if _, err := untrusting.Auth().Token().LookupSelfWithContext(context.Background()); err == nil {
		t.Fatal("a client without CACert trusted the dev TLS certificate")
	}
}
