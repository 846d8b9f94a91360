package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jit-ssh/jit-ssh/ca/api"
)

// defaultServer is where the CLI looks for a server without --server or
// JIT_SSH_SERVER: the dev server's address.
const defaultServer = api.DefaultServerURL

// env is what commands read and write: injected so commands are testable.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	server string // --server
	output string // --output

	tokenOnce sync.Once // token is looked up once per process (it may run gh)
	tokenVal  string
}

// commands are the top-level commands, by name. A run whose first argument
// names one builds only that command under the root: building the whole tree
// is about half a millisecond of every process start, a login included.
// Anything else (help, completion, a flag first, an alias or a mistyped
// name) gets the whole tree.
var commands = []struct {
	name string
	new  func(*env) *cobra.Command
}{
	{"serve", newServeCmd},
	{"login", newLoginCmd},
	{"status", newStatusCmd},
	{"logout", newLogoutCmd},
	{"ssh-config", newSSHConfigCmd},
	{"request", newRequestCmd},
	{"review", newReviewCmd},
	{"audit", newAuditCmd},
	{"ca", newCACmd},
	{"host", newHostCmd},
	{"auth", newAuthCmd},
	{"revoke", newRevokeCmd},
	{"doctor", newDoctorCmd},
	{"vault", newVaultCmd},
	{"version", newVersionCmd},
}

// newRootCmd builds the command tree for a run with args (see commands).
func newRootCmd(e *env, args []string) *cobra.Command {
	root := &cobra.Command{
		Use:   "jit-ssh",
		Short: "Just-in-time SSH access: short-lived, approved, recorded certificates",
		Long: `jit-ssh gives engineers SSH access just in time. Run 'jit-ssh login GROUP',
get the request approved, and use plain ssh: your ssh-agent holds a certificate
that lives for minutes and only reaches that host group. Every request, review
and certificate is recorded in a ledger auditors can query and verify.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// Human output never passes a terminal control through (see
			// termWriter); JSON and CSV are data and stay byte for byte.
			// The server's JSON log on stderr is left as it is.
			if cmd.Name() != "serve" {
				e.stderr = termWriter{e.stderr}
			}
			switch e.output {
			case "table":
				e.stdout = termWriter{e.stdout}
				return nil
			case "json":
				return nil
			case "csv":
				if cmd.Annotations[csvOK] != "" {
					return nil
				}
				return &usageError{fmt.Errorf("--output csv is for audit certs and audit events; %s takes table or json", cmd.CommandPath())}
			default:
				return &usageError{fmt.Errorf("--output must be table or json, not %q", e.output)}
			}
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentFlags().StringVar(&e.server, "server", "", "jit-ssh server URL (env JIT_SSH_SERVER; default "+defaultServer+")")
	root.PersistentFlags().StringVarP(&e.output, "output", "o", "table", "output format where a command prints records: table or json (audit listings also csv)")
	for _, c := range commands {
		if len(args) > 0 && args[0] == c.name {
			root.AddCommand(c.new(e))
			break
		}
	}
	if !root.HasSubCommands() {
		for _, c := range commands {
			root.AddCommand(c.new(e))
		}
	}
	wrapArgs(root)
	return root
}

// wrapArgs makes argument mistakes usage errors (exit 2) that name the
// command's usage line, for c and every command below it. A command that
// only groups others (jit-ssh, request, audit, ...) prints its help when
// run alone and refuses an unknown subcommand, which cobra would otherwise
// answer with the help text and exit 0.
func wrapArgs(c *cobra.Command) {
	switch {
	case c.HasSubCommands() && c.Run == nil && c.RunE == nil:
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	case c.Args != nil:
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if check(cmd, args) == nil {
				return nil
			}
			return argsError(cmd, args, check)
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// unknownCommand refuses name under cmd, suggesting near names.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, which SuggestionsFor does not apply
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(quoteAll(s), " or "))
	}
	return &usageError{fmt.Errorf("%s; run '%s --help' for its commands", msg, cmd.CommandPath())}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

// argsError explains why args do not fit cmd (check refused them): the
// first missing argument by the name its usage line gives it, or the first
// argument too many; then the usage line.
func argsError(cmd *cobra.Command, args []string, check cobra.PositionalArgs) error {
	// The longest prefix of args that check accepts: the argument after it
	// is one too many. No accepted prefix means something is missing.
	what := ""
	for n := len(args) - 1; n >= 0; n-- {
		if check(cmd, args[:n]) == nil {
			what = fmt.Sprintf("unexpected argument %q", args[n])
			break
		}
	}
	if what == "" {
		what = "missing an argument"
		if names := positionalNames(cmd.Use); len(args) < len(names) {
			what = "missing " + names[len(args)]
		}
	}
	return &usageError{fmt.Errorf("%s; usage: %s (see '%s --help')", what, cmd.UseLine(), cmd.CommandPath())}
}

// positionalNames lists the arguments a Use line names outside brackets
// and flags: "create GROUP --duration D" gives [GROUP].
func positionalNames(use string) []string {
	var names []string
	depth, afterFlag := 0, false
	for i, f := range strings.Fields(use) {
		if strings.HasPrefix(f, "[") || strings.HasPrefix(f, "(") {
			depth++
		}
		if i > 0 && depth == 0 && !afterFlag && !strings.HasPrefix(f, "-") {
			names = append(names, f)
		}
		afterFlag = strings.HasPrefix(f, "-")
		depth = max(depth-strings.Count(f, "]")-strings.Count(f, ")"), 0)
	}
	return names
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(e.stdout, "jit-ssh", version)
			return nil
		},
	}
}

func (e *env) serverURL() string {
	if e.server != "" {
		return e.server
	}
	if s := e.getenv("JIT_SSH_SERVER"); s != "" {
		return s
	}
	return defaultServer
}

// token finds the caller's bearer token: JIT_SSH_TOKEN, then GITHUB_TOKEN,
// then the file 'jit-ssh auth login' stored, then the token of an installed
// gh. It is never printed.
func (e *env) token() string {
	e.tokenOnce.Do(func() { e.tokenVal = e.lookupToken() })
	return e.tokenVal
}

func (e *env) lookupToken() string {
	for _, k := range []string{"JIT_SSH_TOKEN", "GITHUB_TOKEN"} {
		if t := strings.TrimSpace(e.getenv(k)); t != "" {
			return t
		}
	}
	if t := e.storedToken(); t != "" {
		return t
	}
	if _, err := exec.LookPath("gh"); err == nil {
		out, err := exec.Command("gh", "auth", "token").Output()
		if err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	return ""
}

func (e *env) client() (*api.Client, error) {
	c, err := api.NewClient(e.serverURL(), e.token())
	if err != nil {
		return nil, &usageError{err}
	}
	return c, nil
}

// publicClient is a client without a token, for the host commands: they
// read only public endpoints (CA keys, KRL, host groups), so a host never
// sends, or goes looking for, anyone's token.
func (e *env) publicClient() (*api.Client, error) {
	c, err := api.NewClient(e.serverURL(), "")
	if err != nil {
		return nil, &usageError{err}
	}
	return c, nil
}

// printJSON writes one JSON object per line.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func (e *env) table() *tabwriter.Writer {
	return tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
}

// until renders the time left until t, for tables.
func until(t time.Time, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "expired"
	}
	return d.String()
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
