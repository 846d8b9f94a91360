package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/hostconfig"
)

func newRevokeCmd(e *env) *cobra.Command {
	var in api.RevokeRequest
	var serial uint64
	cmd := &cobra.Command{
		Use:   "revoke (--serial N | --request ID | --user U) --reason R",
		Short: "Revoke certificates now and end the grants behind them",
		Long: `Revoke a certificate (--serial), every certificate of a request (--request),
or every certificate of a user (--user), and end the grants involved so no new
certificate can be minted under them. The KRL at GET /v1/krl changes at once;
hosts pick it up with 'jit-ssh host sync'. Approvers of the group and admins
may revoke; anyone may revoke their own.`,
		Example: `  jit-ssh revoke --serial 4312454256429954134 --reason "laptop stolen"
  jit-ssh revoke --user alice --reason "left the company"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serial != 0 {
				in.Serial = strconv.FormatUint(serial, 10)
			}
			n := 0
			for _, v := range []string{in.Serial, in.RequestID, in.User} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return &usageError{errors.New("give exactly one of --serial, --request or --user")}
			}
			if strings.TrimSpace(in.Reason) == "" {
				return &usageError{errors.New("--reason is required: it goes into the ledger")}
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			res, err := c.Revoke(cmd.Context(), in)
			if err != nil {
				return err
			}
			if e.output == "json" {
				return e.printJSON(res)
			}
			fmt.Fprintf(e.stdout, "Revoked %d certificate(s)%s; ended %d grant(s)%s.\n", len(res.Revoked), list(res.Revoked), len(res.EndedGrants), list(res.EndedGrants))
			if len(res.CancelledRequests) > 0 {
				fmt.Fprintf(e.stdout, "Cancelled pending request(s)%s: they can no longer be approved.\n", list(res.CancelledRequests))
			}
			fmt.Fprintln(e.stdout, "Hosts refuse them once they run 'jit-ssh host sync'.")
			return nil
		},
	}
	cmd.Flags().Uint64Var(&serial, "serial", 0, "revoke the certificate with this serial")
	cmd.Flags().StringVar(&in.RequestID, "request", "", "revoke every certificate of this request and end its grant")
	cmd.Flags().StringVar(&in.User, "user", "", "revoke every certificate of this user and end all their grants")
	cmd.Flags().StringVar(&in.Reason, "reason", "", "why (recorded in the ledger)")
	return cmd
}

func list(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return " (" + strings.Join(items, ", ") + ")"
}

// maxKRLBytes bounds a KRL download.
const maxKRLBytes = 16 << 20

// serverSource feeds host sync from the jit-ssh server.
type serverSource struct{ c *api.Client }

func (s serverSource) CAKeys(ctx context.Context) ([]ssh.PublicKey, error) {
	resp, err := s.c.CA(ctx)
	if err != nil {
		return nil, err
	}
	var keys []ssh.PublicKey
	for _, k := range resp.Keys {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("the server sent an unreadable CA key: %w", err)
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

func (s serverSource) KRL(ctx context.Context) ([]byte, error) { return s.c.KRL(ctx, maxKRLBytes) }

func newHostSyncCmd(e *env) *cobra.Command {
	var dir string
	var allowOlder bool
	cmd := &cobra.Command{
		Use:   "sync [--dir DIR]",
		Short: "Fetch the CA keys and the KRL; replace them atomically, keeping the last good copy on failure",
		Long: `Fetch the CA keys and the KRL from the server, check them (the keys parse and
are not empty; the KRL parses and is not older than the one in place), and
replace DIR/ca.pub and DIR/revoked.krl atomically (write, fsync, rename). On
any failure the last good files stay and the command exits non-zero; the KRL
is never left missing. sshd reads both files on each connection, so no reload
is needed. Run it from a systemd timer every minute (see README and
deploy/systemd/jit-ssh-host-sync.timer); 'jit-ssh doctor --host' reports a
KRL that has not been synced for too long.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return &usageError{err}
			}
			c, err := e.publicClient()
			if err != nil {
				return err
			}
			var opts []hostconfig.SyncOption
			if allowOlder {
				opts = append(opts, hostconfig.AllowOlderKRL())
			}
			res, err := hostconfig.Sync(cmd.Context(), abs, serverSource{c}, opts...)
			if err != nil {
				// Flattened on purpose: the whole chain (what failed, that
				// the last good files were kept, the server's answer) is the
				// message, where main would show only the server's answer.
				return errors.New("host sync failed: " + err.Error())
			}
			if e.output == "json" {
				return e.printJSON(res)
			}
			fmt.Fprintf(e.stdout, "Synced %s: %d CA key(s)%s, KRL version %d%s.\n", abs, res.CAKeys, changed(res.CAChanged),
				res.KRLVersion, changed(res.KRLChanged))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "/etc/ssh/jit-ssh", "the host files directory written by 'jit-ssh host config'")
	cmd.Flags().BoolVar(&allowOlder, "allow-older-krl", false, "accept a KRL older than the local one (only after the server was deliberately rebuilt)")
	return cmd
}

func changed(b bool) string {
	if b {
		return " (updated)"
	}
	return " (unchanged)"
}
