package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/hostconfig"
)

func newHostCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Configure hosts to trust jit-ssh certificates",
	}
	cmd.AddCommand(newHostConfigCmd(e), newHostSyncCmd(e))
	return cmd
}

type hostConfigOptions struct {
	group      string
	login      string
	dir        string
	principals []string
	caKeys     string
	noCheck    bool
}

func newHostConfigCmd(e *env) *cobra.Command {
	o := &hostConfigOptions{}
	cmd := &cobra.Command{
		Use:   "config --group G --user LOGIN [--dir DIR]",
		Short: "Write (or print) the sshd drop-in, CA keys, principals file and KRL for a host",
		Long: `Write the four host files of a host in group G that users log in to as LOGIN:
  DIR/jit-ssh.conf        sshd drop-in (TrustedUserCAKeys, AuthorizedPrincipalsFile, RevokedKeys)
  DIR/ca.pub              the CA keys to trust
  DIR/principals/LOGIN    the group's principals
  DIR/revoked.krl         the key revocation list (created empty if missing)
Then Include DIR/jit-ssh.conf from sshd_config (or copy it into
/etc/ssh/sshd_config.d/) and reload sshd. When sshd is installed the drop-in is
checked with 'sshd -t'. Without --dir the files are printed instead.

The CA keys and the group's principals come from the server unless
--ca-keys FILE and --principal are given.`,
		Example: `  sudo jit-ssh host config --group prod-db --user postgres --dir /etc/ssh/jit-ssh`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.group == "" || o.login == "" {
				return &usageError{errors.New("--group and --user are required")}
			}
			return o.run(cmd.Context(), e)
		},
	}
	cmd.Flags().StringVar(&o.group, "group", "", "host group of this host")
	cmd.Flags().StringVar(&o.login, "user", "", "Unix account certificates log in as")
	cmd.Flags().StringVar(&o.dir, "dir", "", "directory to write the files to (absolute); print them when empty")
	cmd.Flags().StringSliceVar(&o.principals, "principal", nil, "the group's principals (default: from the server)")
	cmd.Flags().StringVar(&o.caKeys, "ca-keys", "", "file of CA public keys to trust (default: from the server)")
	cmd.Flags().BoolVar(&o.noCheck, "no-check", false, "skip the 'sshd -t' check")
	return cmd
}

func (o *hostConfigOptions) run(ctx context.Context, e *env) error {
	keys, principals, err := o.sources(ctx, e)
	if err != nil {
		return err
	}
	dir := o.dir
	if dir != "" {
		if dir, err = filepath.Abs(dir); err != nil {
			return err
		}
	}
	files := hostconfig.Files{Dir: dir, Group: o.group, Login: o.login, Principals: principals, CAKeys: keys}
	if o.dir == "" {
		files.Dir = "/etc/ssh/jit-ssh"
		rendered, err := hostconfig.Render(files)
		if err != nil {
			return &usageError{err}
		}
		for _, f := range rendered {
			if filepath.Base(f.Path) == hostconfig.KRLName {
				fmt.Fprintf(e.stdout, "# %s: binary; written empty by 'jit-ssh host config --dir', kept fresh by 'jit-ssh host sync'\n\n", f.Path)
				continue
			}
			fmt.Fprintf(e.stdout, "# %s\n%s\n", f.Path, f.Data)
		}
		return nil
	}
	written, err := hostconfig.Write(files)
	if err != nil {
		return &usageError{err}
	}
	for _, p := range written {
		fmt.Fprintln(e.stdout, "wrote", p)
	}
	if o.noCheck {
		return nil
	}
	sshd, err := hostconfig.FindSSHD()
	if err != nil {
		fmt.Fprintln(e.stderr, "sshd not found; skipped the 'sshd -t' check")
		return nil
	}
	if err := hostconfig.CheckWithSSHD(ctx, sshd, files.DropInPath()); err != nil {
		return fmt.Errorf("sshd rejects the drop-in: %w", err)
	}
	fmt.Fprintf(e.stdout, "sshd -t accepts %s. Add 'Include %s' to sshd_config and reload sshd.\n", files.DropInPath(), files.DropInPath())
	return nil
}

// sources returns the CA keys and principals, from flags or the server.
func (o *hostConfigOptions) sources(ctx context.Context, e *env) ([]ssh.PublicKey, []string, error) {
	var keys []ssh.PublicKey
	principals := o.principals
	if o.caKeys != "" {
		data, err := os.ReadFile(o.caKeys)
		if err != nil {
			return nil, nil, err
		}
		for rest := data; len(rest) > 0; {
			k, _, _, r, err := ssh.ParseAuthorizedKey(rest)
			if err != nil {
				break
			}
			keys, rest = append(keys, k), r
		}
		if len(keys) == 0 {
			return nil, nil, fmt.Errorf("%s holds no public key", o.caKeys)
		}
	}
	if keys != nil && principals != nil {
		return keys, principals, nil
	}
	if err := ca.CheckGroup(o.group); err != nil {
		return nil, nil, &usageError{err}
	}
	c, err := e.publicClient()
	if err != nil {
		return nil, nil, err
	}
	if keys == nil {
		resp, err := c.CA(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, k := range resp.Keys {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
			if err != nil {
				return nil, nil, fmt.Errorf("the server sent an unreadable CA key: %w", err)
			}
			keys = append(keys, pub)
		}
	}
	if principals == nil {
		g, err := c.HostGroup(ctx, o.group)
		if err != nil {
			return nil, nil, err
		}
		principals = g.Principals
	}
	return keys, principals, nil
}
