package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/github"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// githubClientID is the OAuth app used by 'jit-ssh auth login' when neither
// --client-id nor JIT_SSH_GITHUB_CLIENT_ID is given. Deployments can build
// it in with -ldflags "-X main.githubClientID=Iv1....".
var githubClientID = ""

// Defaults of 'jit-ssh auth login'.
const (
	defaultGitHubURL    = "https://github.com"
	defaultGitHubAPIURL = github.DefaultAPIURL
	tokenFileName       = "token"
)

func newAuthCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Sign the CLI in to GitHub, show or remove its token",
		Long: `The jit-ssh server knows you by your GitHub token. The CLI takes it from, in
order: JIT_SSH_TOKEN, GITHUB_TOKEN, the file 'jit-ssh auth login' stores, or
an installed gh ('gh auth token').`,
	}
	cmd.AddCommand(newAuthLoginCmd(e), newAuthStatusCmd(e), newAuthLogoutCmd(e))
	return cmd
}

type authLoginOptions struct {
	clientID  string
	githubURL string
	apiURL    string
}

func newAuthLoginCmd(e *env) *cobra.Command {
	o := &authLoginOptions{}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in to GitHub with the device flow and store the token",
		Long: `Sign in to GitHub with the OAuth device flow: jit-ssh shows a one-time code,
you enter it at GitHub's device page in any browser, and the token GitHub
issues is stored readable only by you in your config directory
(~/.config/jit-ssh/token on Linux). The token asks for no scopes: jit-ssh
only needs to know who you are.

The OAuth app's client ID comes from --client-id or JIT_SSH_GITHUB_CLIENT_ID;
for GitHub Enterprise Server also give --github-url and --api-url (or
JIT_SSH_GITHUB_URL and JIT_SSH_GITHUB_API_URL).`,
		Example: `  jit-ssh auth login --client-id Iv1.0123456789abcdef
  jit-ssh auth login --github-url https://ghe.example.com --api-url https://ghe.example.com/api/v3/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.clientID = firstNonEmpty(o.clientID, e.getenv("JIT_SSH_GITHUB_CLIENT_ID"), githubClientID)
			o.githubURL = firstNonEmpty(o.githubURL, e.getenv("JIT_SSH_GITHUB_URL"), defaultGitHubURL)
			o.apiURL = firstNonEmpty(o.apiURL, e.getenv("JIT_SSH_GITHUB_API_URL"), defaultGitHubAPIURL)
			if o.clientID == "" {
				return &usageError{errors.New("no GitHub OAuth app client ID: pass --client-id or set JIT_SSH_GITHUB_CLIENT_ID (your jit-ssh operator has it)")}
			}
			if err := checkGitHubURL("--github-url", o.githubURL, "https://github.com"); err != nil {
				return err
			}
			if err := checkGitHubURL("--api-url", o.apiURL, defaultGitHubAPIURL); err != nil {
				return err
			}
			return o.run(cmd.Context(), e)
		},
	}
	cmd.Flags().StringVar(&o.clientID, "client-id", "", "GitHub OAuth app client ID (env JIT_SSH_GITHUB_CLIENT_ID)")
	cmd.Flags().StringVar(&o.githubURL, "github-url", "", "GitHub web URL (env JIT_SSH_GITHUB_URL; default "+defaultGitHubURL+")")
	cmd.Flags().StringVar(&o.apiURL, "api-url", "", "GitHub API URL (env JIT_SSH_GITHUB_API_URL; default "+defaultGitHubAPIURL+")")
	return cmd
}

// checkGitHubURL refuses a GitHub URL the CLI must not send a token to,
// before anything is sent: https, or plain http only to loopback (as for
// the jit-ssh server and the server's own identity.github.api_url).
func checkGitHubURL(flag, raw, example string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &usageError{fmt.Errorf("%s %q must look like %s", flag, raw, example)}
	}
	if !api.SecureTransport(u) {
		return &usageError{fmt.Errorf("%s %s is plain http to a host that is not on loopback, which would carry your GitHub token in clear: use https://%s instead", flag, u.Redacted(), u.Host)}
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

func (o *authLoginOptions) run(ctx context.Context, e *env) error {
	web := strings.TrimSuffix(o.githubURL, "/")
	conf := &oauth2.Config{
		ClientID: o.clientID,
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: web + "/login/device/code",
			TokenURL:      web + "/login/oauth/access_token",
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return deviceFlowError(err, o)
	}
	fmt.Fprintf(e.stderr, "First copy your one-time code: %s\n", da.UserCode)
	fmt.Fprintf(e.stderr, "Then open %s in a browser, enter the code and authorise jit-ssh.\n", da.VerificationURI)
	fmt.Fprintln(e.stderr, "Waiting for GitHub (Ctrl-C stops)...")
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return deviceFlowError(err, o)
	}
	if tok.AccessToken == "" {
		return errors.New("GitHub answered without a token; run 'jit-ssh auth login' again")
	}
	login, err := github.Login(ctx, o.apiURL, tok.AccessToken, nil)
	if err != nil {
		return fmt.Errorf("GitHub issued a token but reading your login at %s failed (nothing was stored): %w", o.apiURL, err)
	}
	path, err := tokenFile()
	if err != nil {
		return err
	}
	if err := writeToken(path, tok.AccessToken); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Signed in to GitHub as %s. The token is stored in %s (readable only by you).\n", login, path)
	return nil
}

func deviceFlowError(err error, o *authLoginOptions) error {
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.ErrorCode == "access_denied":
		return &deniedError{errors.New("the sign-in was cancelled at GitHub; nothing was stored")}
	case errors.As(err, &re) && re.ErrorCode == "expired_token", errors.Is(err, context.DeadlineExceeded):
		return errors.New("the one-time code expired before it was entered; run 'jit-ssh auth login' again")
	case errors.As(err, &re) && (re.ErrorCode == "incorrect_client_credentials" || re.ErrorCode == "device_flow_disabled"):
		return fmt.Errorf("GitHub at %s refused client ID %s (%s): check --client-id or JIT_SSH_GITHUB_CLIENT_ID, and that the OAuth app has device flow enabled",
			o.githubURL, o.clientID, re.ErrorCode)
	case errors.As(err, &re) && re.ErrorCode != "":
		return fmt.Errorf("GitHub refused the sign-in (%s: %s); run 'jit-ssh auth login' again", re.ErrorCode, re.ErrorDescription)
	case errors.Is(err, context.Canceled):
		return errors.New("sign-in stopped; nothing was stored")
	default:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot complete the GitHub sign-in at %s: %w", o.githubURL, err)
	}
}

// tokenFile is where 'auth login' stores the token.
func tokenFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding your config directory: %w (set HOME or XDG_CONFIG_HOME)", err)
	}
	return filepath.Join(dir, "jit-ssh", tokenFileName), nil
}

// writeToken stores token alone in path, mode 0600, in a directory of mode
// 0700, replacing any earlier file atomically.
func writeToken(path, token string) error {
	return writePrivateFile(path, []byte(token), true)
}

// writePrivateFile replaces path atomically with b, mode 0600 in a
// directory of mode 0700; with durable, b is synced before the rename.
func writePrivateFile(path string, b []byte, durable bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restricting %s: %w", dir, err)
	}
	what := "writing " + filepath.Base(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", what, err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// storedToken returns the token 'auth login' stored, or "". A file others
// can read is ignored, with a warning.
func (e *env) storedToken() string {
	path, err := tokenFile()
	if err != nil {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(e.stderr, "jit-ssh: ignoring %s: others can read it; run 'chmod 600 %s' or 'jit-ssh auth login' again\n", path, path)
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// tokenSource is one place the CLI can take its token from.
type tokenSource struct {
	name  string
	found bool
}

// tokenSources lists where the CLI looks for a token, in order, and which
// hold one. No token is kept or shown.
func (e *env) tokenSources() []tokenSource {
	var out []tokenSource
	for _, k := range []string{"JIT_SSH_TOKEN", "GITHUB_TOKEN"} {
		out = append(out, tokenSource{name: "environment variable " + k, found: strings.TrimSpace(e.getenv(k)) != ""})
	}
	path, err := tokenFile()
	if err != nil {
		path = "(no config directory)"
	}
	out = append(out, tokenSource{name: "stored file " + path, found: e.storedToken() != ""})
	gh := tokenSource{name: "gh auth token"}
	if _, err := exec.LookPath("gh"); err == nil {
		if b, err := exec.Command("gh", "auth", "token").Output(); err == nil && strings.TrimSpace(string(b)) != "" {
			gh.found = true
		}
	}
	return append(out, gh)
}

func newAuthStatusCmd(e *env) *cobra.Command {
	var verify bool
	var apiURL string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which token the CLI would use (never the token itself)",
		Long: `Show where the CLI would take its token from: JIT_SSH_TOKEN, GITHUB_TOKEN, the
stored file, or gh. With --verify, ask GitHub (--api-url) whose token it is.
Exits 1 when there is no token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sources := e.tokenSources()
			used := -1
			for i, s := range sources {
				if s.found && used < 0 {
					used = i
				}
			}
			if used < 0 {
				fmt.Fprintln(e.stdout, "No token: nothing in JIT_SSH_TOKEN or GITHUB_TOKEN, no stored file, no gh token.")
				return errors.New("not signed in; run 'jit-ssh auth login' or set JIT_SSH_TOKEN")
			}
			fmt.Fprintf(e.stdout, "Token in use: %s\n", sources[used].name)
			for _, s := range sources[used+1:] {
				if s.found {
					fmt.Fprintf(e.stdout, "Also present (not used): %s\n", s.name)
				}
			}
			if !verify {
				return nil
			}
			apiURL = firstNonEmpty(apiURL, e.getenv("JIT_SSH_GITHUB_API_URL"), defaultGitHubAPIURL)
			if err := checkGitHubURL("--api-url", apiURL, defaultGitHubAPIURL); err != nil {
				return err
			}
			login, err := github.Login(cmd.Context(), apiURL, e.token(), nil)
			if err != nil {
				if errors.Is(err, approval.ErrUnauthenticated) {
					return &deniedError{fmt.Errorf("GitHub at %s does not accept this token (%w); run 'jit-ssh auth login'", apiURL, err)}
				}
				return fmt.Errorf("cannot check the token with GitHub at %s: %w", apiURL, err)
			}
			fmt.Fprintf(e.stdout, "GitHub login: %s\n", login)
			return nil
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "ask GitHub whose token it is")
	cmd.Flags().StringVar(&apiURL, "api-url", "", "GitHub API URL for --verify (env JIT_SSH_GITHUB_API_URL; default "+defaultGitHubAPIURL+")")
	return cmd
}

func newAuthLogoutCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Delete the stored token",
		Long: `Delete the token 'jit-ssh auth login' stored. It stays valid at GitHub until
you revoke it (Settings > Applications > Authorized OAuth Apps). Tokens in
JIT_SSH_TOKEN, GITHUB_TOKEN or gh are not touched.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, err := tokenFile()
			if err != nil {
				return err
			}
			switch err := os.Remove(path); {
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintf(e.stdout, "No stored token at %s.\n", path)
			case err != nil:
				return fmt.Errorf("deleting the stored token: %w", err)
			default:
				fmt.Fprintf(e.stdout, "Deleted the stored token %s.\n", path)
			}
			for _, k := range []string{"JIT_SSH_TOKEN", "GITHUB_TOKEN"} {
				if strings.TrimSpace(e.getenv(k)) != "" {
					fmt.Fprintf(e.stdout, "%s is still set and will be used.\n", k)
				}
			}
			return nil
		},
	}
}
