package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

type sshConfigOptions struct {
	group string
	hosts []string

	// executable is the path of the running binary; nil means
	// os.Executable (tests inject one).
	executable func() (string, error)
}

func newSSHConfigCmd(e *env) *cobra.Command {
	o := &sshConfigOptions{}
	cmd := &cobra.Command{
		Use:   "ssh-config --group G --hosts 'PATTERN ...'",
		Short: "Print an ssh_config block so plain ssh gets the certificate for a host group by itself",
		Long: `Print an ssh_config block for the hosts of host group G. Put it near the top of
~/.ssh/config, above any "Host *" block (ssh keeps the first value it finds), or
in a file of its own that a line 'Include ~/.ssh/jit-ssh-*.conf' at the top of
~/.ssh/config reads.
Then plain 'ssh db1.prod.example.com' (and scp, rsync, git over ssh) first runs
'jit-ssh login --ensure G': that returns at once, without a network call, while
your ssh-agent holds this tool's certificate for G with more than a minute left,
and otherwise logs in as 'jit-ssh login G' does, reusing your open grant or
waiting for approval, with its progress on stderr.

PATTERN is an ssh host pattern as in ssh_config's Host lines: letters, digits,
'.', '-', '_', ':', the wildcards '*' and '?', and '!' in front to exclude;
give several separated by spaces or commas. The block runs this binary by its
absolute path: print it again after moving or reinstalling jit-ssh. The server
is the one this command is given (--server or JIT_SSH_SERVER), else ssh's
environment decides.`,
		Example: `  jit-ssh ssh-config --group prod-db --hosts '*.prod.example.com !bastion.prod.example.com' > ~/.ssh/jit-ssh-prod-db.conf
  # and once, as the first line of ~/.ssh/config:
  Include ~/.ssh/jit-ssh-*.conf`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if o.group == "" || len(o.hosts) == 0 {
				return &usageError{errors.New("--group and --hosts are required")}
			}
			block, err := o.render(e)
			if err != nil {
				return &usageError{err}
			}
			_, err = fmt.Fprint(e.stdout, block)
			return err
		},
	}
	cmd.Flags().StringVar(&o.group, "group", "", "host group whose certificate ssh should get")
	cmd.Flags().StringArrayVar(&o.hosts, "hosts", nil, "ssh host patterns of the group's hosts, separated by spaces or commas (repeatable)")
	return cmd
}

// render returns the ssh_config block. Everything written into it is
// checked first: ssh_config has no escape that every OpenSSH version
// reads the same way, and the exec command runs through the user's shell.
func (o *sshConfigOptions) render(e *env) (string, error) {
	if err := ca.CheckGroup(o.group); err != nil {
		return "", fmt.Errorf("--group %q is not a host group name (lowercase letters, digits, '.', '_' and '-')", o.group)
	}
	patterns, err := hostPatterns(o.hosts)
	if err != nil {
		return "", err
	}
	exe := o.executable
	if exe == nil {
		exe = os.Executable
	}
	bin, err := exe()
	if err != nil {
		return "", fmt.Errorf("cannot find the path of this jit-ssh binary (%w); run it by its absolute path", err)
	}
	if err := checkExecPath(bin); err != nil {
		return "", err
	}
	command := bin + " login --ensure " + o.group
	if server := o.server(e); server != "" {
		if err := checkExecURL(server); err != nil {
			return "", err
		}
		command += " --server " + server
	}
	list := strings.Join(patterns, ",")
	var b strings.Builder
	fmt.Fprintf(&b, `# jit-ssh: plain ssh to these hosts first gets a certificate for host group %[1]s.
# 'jit-ssh login --ensure %[1]s' returns at once while the agent holds one with
# more than a minute left, else logs in (progress on stderr; it may wait for an
# approval). Keep this block above any "Host *" block: ssh keeps the first value.
Match host "%[2]s" exec "%[3]s"
    # The certificate is in the agent of $SSH_AUTH_SOCK, where jit-ssh put it.
    IdentityAgent SSH_AUTH_SOCK
    # It has no key file, so IdentitiesOnly yes would keep ssh from offering it.
    # ssh offers the agent's keys in turn and a host stops after MaxAuthTries
    # (6 by default): keep few other keys in this agent.
    IdentitiesOnly no
`, o.group, list, command)
	return b.String(), nil
}

// server is the server URL given to this command (--server, else
// JIT_SSH_SERVER), or "" for none: then the exec line names none and
// ssh's own environment decides, as for any jit-ssh command.
func (o *sshConfigOptions) server(e *env) string {
	if e.server != "" {
		return e.server
	}
	return e.getenv("JIT_SSH_SERVER")
}

// hostPatterns splits the --hosts values at spaces and commas and checks
// each pattern. A list of exclusions only would match no host.
func hostPatterns(values []string) ([]string, error) {
	var out []string
	positive := false
	for _, v := range values {
		for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' }) {
			if err := checkHostPattern(p); err != nil {
				return nil, err
			}
			positive = positive || !strings.HasPrefix(p, "!")
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--hosts names no host pattern; give one such as '*.prod.example.com'")
	}
	if !positive {
		return nil, fmt.Errorf("--hosts %q only excludes hosts ('!'), so it would match none; add the pattern of the group's hosts, such as '*.prod.example.com'", strings.Join(out, " "))
	}
	return out, nil
}

// checkHostPattern accepts one ssh host pattern: an optional leading '!',
// then letters, digits, '.', '-', '_', ':' (IPv6) and the wildcards '*'
// and '?'. Whitespace other than the separating spaces, quotes, '#', '%',
// '\', control characters and non-ASCII are refused, each by name.
func checkHostPattern(p string) error {
	body := strings.TrimPrefix(p, "!")
	if body == "" {
		return fmt.Errorf("--hosts pattern %q is empty after '!'; write '!host' to exclude a host", p)
	}
	if len(p) > 255 {
		return fmt.Errorf("--hosts pattern %.40q... is longer than 255 characters, more than any host name", p)
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case isHostChar(c) || c == '*' || c == '?':
		case c == '!':
			return fmt.Errorf("--hosts pattern %q has '!' inside; '!' may only start a pattern, to exclude it", p)
		default:
			return fmt.Errorf("--hosts pattern %q contains %s, which an ssh_config host pattern cannot hold; use letters, digits, '.', '-', '_', ':', '*' and '?'", p, describeByte(c))
		}
	}
	return nil
}

func isHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':'
}

// checkExecPath accepts the binary path for the exec command: absolute,
// and only characters that ssh_config, its %-expansion and every shell read
// literally (letters, digits, '/', '.', '-', '_', '+').
func checkExecPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("this jit-ssh binary's path %q is not absolute; run it by its absolute path", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !isPathChar(c) {
			return fmt.Errorf("this jit-ssh binary's path %q contains %s, which ssh would pass on to the shell; install jit-ssh at a path of letters, digits, '/', '.', '-', '_' and '+' (such as /usr/local/bin/jit-ssh) and run this again", p, describeByte(c))
		}
	}
	return nil
}

func isPathChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("/.-_+", c) >= 0
}

// checkExecURL accepts the server URL for the exec command: an http(s) URL
// of the characters a host, a port and a plain path need, nothing a shell
// or ssh's %-expansion would read.
func checkExecURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("server URL %q is not an http(s) URL; give one such as https://jit-ssh.example.com with --server", s)
	}
	if _, err := api.NewClient(s, ""); err != nil {
		return err // plain http to a server off loopback, say
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isPathChar(c) && c != ':' {
			return fmt.Errorf("server URL %q contains %s, which ssh would pass on to the shell; give the server as scheme, host, port and path only (letters, digits, ':', '/', '.', '-', '_')", s, describeByte(c))
		}
	}
	return nil
}

// describeByte names a refused byte for an error message.
func describeByte(c byte) string {
	switch {
	case c == ' ':
		return "a space"
	case c == '\t':
		return "a tab"
	case c == '\n' || c == '\r':
		return "a line break"
	case c < 0x20 || c == 0x7f:
		return fmt.Sprintf("the control character 0x%02x", c)
	case c >= 0x80:
		return "a non-ASCII character"
	case c == '\'':
		return `"'"`
	default:
		return "'" + string(rune(c)) + "'"
	}
}
