package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/cmd/jit-ssh/internal/config"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/postgres"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

type serveOptions struct {
	config   string
	dev      bool
	listen   string
	dataDir  string
	logLevel string
}

func newServeCmd(e *env) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [--config FILE | --dev]",
		Short: "Run the CA service",
		Long: `Run the jit-ssh CA service.

--dev runs the embedded default: plain HTTP on loopback, a file CA key and the
ledger under the data dir, and the demo directory (alice and erin request, bob
and dave approve, carol audits; tokens dev-<login>) with two host groups:
staging (auto-approved) and prod-db (one approval). Never use it in production.`,
		Example: `  jit-ssh serve --dev
  jit-ssh serve --dev --listen 127.0.0.1:0 --data-dir /tmp/jit
  jit-ssh serve --config /etc/jit-ssh/config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.dev == (o.config != "") {
				return &usageError{errors.New("give exactly one of --config FILE or --dev")}
			}
			serverGC(e.getenv)
			return o.run(cmd.Context(), e)
		},
	}
	cmd.Flags().StringVar(&o.config, "config", "", "server config file (YAML; the README's \"Configuring a real deployment\" has every key)")
	cmd.Flags().BoolVar(&o.dev, "dev", false, "run the embedded dev default (loopback only)")
	cmd.Flags().StringVar(&o.listen, "listen", "", "listen address, overriding the config (dev default "+api.DefaultListen+")")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "", "data directory, overriding the config")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "info", "server log level: debug, info, warn or error (debug adds one record per HTTP request; tokens and keys are never logged)")
	return cmd
}

// load is the config serve runs with: --dev's embedded default or the
// --config file, with --listen and --data-dir over it.
func (o *serveOptions) load(e *env) (*config.Server, *config.Compiled, error) {
	ov := config.Overrides{Listen: o.listen, DataDir: o.dataDir}
	if o.dev {
		home, _ := os.UserHomeDir() // "" when unknown
		return config.LoadDev(ov, e.getenv("XDG_STATE_HOME"), home)
	}
	return config.Load(o.config, ov)
}

func (o *serveOptions) run(ctx context.Context, e *env) error {
	cfg, comp, err := o.load(e)
	if err != nil {
		return &usageError{err}
	}
	level, err := parseLogLevel(o.logLevel)
	if err != nil {
		return &usageError{err}
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	signer, issuerOpts, closeSigner, err := newSigner(cfg, log, e.getenv)
	if err != nil {
		return err
	}
	defer func() { _ = closeSigner() }()
	dir, err := newDirectory(cfg, e.getenv)
	if err != nil {
		return err
	}
	trusted := comp.TrustedCAKeys
	ckSigner, err := checkpointSigner(cfg, signer)
	if err != nil {
		return err
	}
	db, where, err := openLedger(ctx, cfg, e.getenv, ckSigner, trusted)
	if err != nil {
		return err
	}
	defer db.Close()
	// Before anything is signed or served: the rows after the newest
	// signed checkpoint must be this server's own and match the rows they
	// record.
	tail, err := db.VerifyTail(ctx)
	if err != nil {
		return tailError(where, err)
	}
	log.Info("ledger tail verified", slog.String("ledger", where), slog.Int64("checkpoint_row", tail.Anchor), slog.Int64("rows_after_it", tail.Rows))
	notifier, stopNotifier := newNotifier(cfg, log)
	defer stopNotifier()
	svc := approval.NewService(db, dir, comp.Policies, cfg.Auditors,
		approval.WithPendingTTL(time.Duration(cfg.PendingTTL)), approval.WithLogger(log), approval.WithAdmins(cfg.Admins),
		approval.WithNotifier(notifier), approval.WithSignInHint(devSignInHint(o.dev, cfg)),
		approval.WithWorkloadVerifier(workloadVerifier(cfg)))
	issuer := ca.NewIssuer(signer, db, append(issuerOpts, ca.WithLogger(log))...)
	srv := api.NewServer(svc, issuer, signer, db, api.WithLogger(log), api.WithTrustedKeys(trusted), api.WithLimits(comp.Limits))

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s", scheme, ln.Addr())
	if err := db.RecordEvent(ctx, ca.Event{Actor: "jit-ssh", Type: ca.EventConfigLoaded,
		Data: map[string]any{"config_sha256": cfg.Hash(), "dev": o.dev, "listen": ln.Addr().String(), "version": version,
			"checkpoint_key": ca.Fingerprint(ckSigner.PublicKey())}}); err != nil {
		ln.Close()
		return fmt.Errorf("recording start-up in the ledger: %w", err)
	}
	if o.dev {
		printDevBanner(e, cfg, url)
	}
	log.Info("jit-ssh serving", slog.String("url", url), slog.String("data_dir", cfg.DataDir), slog.String("signer", cfg.Signer.Type),
		slog.String("identity", cfg.Identity.Type), slog.Any("host_groups", slices.Sorted(maps.Keys(cfg.HostGroups))))

	hs := api.HTTPServer(cfg.Listen, srv)
	go expireLoop(ctx, svc, log)
	checkpoint(ctx, db, log)
	go checkpointLoop(ctx, db, log)
	errc := make(chan error, 1)
	go func() {
		if cfg.TLS != nil {
			errc <- hs.ServeTLS(ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	// Identical refusals still being counted are recorded before the
	// last checkpoint covers the chain.
	svc.FlushRefusals(sctx, true)
	checkpoint(sctx, db, log)
	return nil
}

// openLedger opens the ledger cfg.Ledger selects: the SQLite file in the
// data directory, or the PostgreSQL database whose DSN is in the
// environment variable ledger.postgres.dsn_env (read through getenv). It
// returns the ledger and where it is, for messages: the file's path, or
// the database without the DSN's password.
func openLedger(ctx context.Context, cfg *config.Server, getenv func(string) string, ckSigner ssh.Signer, trusted []ssh.PublicKey) (store.Ledger, string, error) {
	if cfg.Ledger.Type != config.LedgerPostgres {
		db, err := sqlite.Open(ctx, cfg.LedgerPath(),
			sqlite.WithCheckpointSigner(ckSigner), sqlite.WithCheckpointKeys(trusted...))
		if err != nil {
			return nil, "", fmt.Errorf("opening the ledger: %w", err)
		}
		return db, db.Path(), nil
	}
	pg := cfg.Ledger.Postgres
	dsn, err := pg.DSN(getenv)
	if err != nil {
		return nil, "", &usageError{err}
	}
	where := postgres.Describe(dsn)
	db, err := postgres.Open(ctx, dsn, postgres.WithMaxConns(pg.MaxConns),
		postgres.WithCheckpointSigner(ckSigner), postgres.WithCheckpointKeys(trusted...))
	if err != nil {
		return nil, "", fmt.Errorf("opening the ledger (%s): %w", where, err)
	}
	return db, where, nil
}

// parseLogLevel reads --log-level; empty means info.
func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
	default:
		return l, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// expireLoop records the expiry of requests nobody reviewed in time, the
// end of grants whose time ran out, and the counts of identical refusals
// whose window closed.
func expireLoop(ctx context.Context, svc *approval.Service, log *slog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := svc.ExpirePending(ctx); err != nil {
				log.Warn("expiring pending requests", slog.String("error", err.Error()))
			}
			if err := svc.EndElapsedGrants(ctx); err != nil {
				log.Warn("recording the end of elapsed grants", slog.String("error", err.Error()))
			}
			svc.FlushRefusals(ctx, false)
		}
	}
}

// newSigner returns the configured signer and a function that releases it.
// newSigner returns the configured CA signer, the options that tell the
// issuer what kind of signer it is (see ca.WithInProcessSigner and
// ca.WithMismatchExplainer), and a function that releases the signer.
// getenv is the process environment, for the Vault client's AppRole.
func newSigner(cfg *config.Server, log *slog.Logger, getenv func(string) string) (ca.Signer, []ca.Option, func() error, error) {
	switch cfg.Signer.Type {
	case "file":
		s, err := ca.LoadOrCreateFileSigner(cfg.Signer.File.KeyFile)
		if err != nil {
			return nil, nil, nil, err
		}
		// The file key signs here: its signatures need no second check.
		return s, []ca.Option{ca.WithInProcessSigner()}, func() error { return nil }, nil
	case "vault":
		s, closeSigner, err := newVaultSigner(cfg, log, getenv)
		if err != nil {
			return nil, nil, nil, err
		}
		return s, []ca.Option{ca.WithMismatchExplainer(s.ExplainMismatch)}, closeSigner, nil
	default:
		return nil, nil, nil, fmt.Errorf("unknown signer type %q", cfg.Signer.Type)
	}
}

func newDirectory(cfg *config.Server, getenv func(string) string) (approval.Directory, error) {
	switch cfg.Identity.Type {
	case "static":
		users := map[string]static.User{}
		for login, u := range cfg.Identity.Static.Users {
			users[login] = static.User{Token: u.Token, Teams: u.Teams}
		}
		return static.New(users), nil
	case "github":
		return newGitHubDirectory(cfg, getenv)
	default:
		return nil, fmt.Errorf("unknown identity type %q", cfg.Identity.Type)
	}
}

// devSignInHint is what the dev server adds to a refused or missing token:
// its demo tokens (they are printed at start anyway). Other servers add
// nothing: their tokens are GitHub's.
func devSignInHint(dev bool, cfg *config.Server) string {
	if !dev || cfg.Identity.Static == nil {
		return ""
	}
	tokens := make([]string, 0, len(cfg.Identity.Static.Users))
	for _, login := range slices.Sorted(maps.Keys(cfg.Identity.Static.Users)) {
		tokens = append(tokens, cfg.Identity.Static.Users[login].Token)
	}
	return "this is a dev server: its tokens are dev-<login> (" + strings.Join(tokens, ", ") + "), e.g. JIT_SSH_TOKEN=dev-alice"
}

func printDevBanner(e *env, cfg *config.Server, url string) {
	w := e.stdout
	fmt.Fprintf(w, "jit-ssh dev server at %s (data dir %s)\n", url, cfg.DataDir)
	fmt.Fprintln(w, "This is the embedded default: static identities, a file CA key. Never use it in production.")
	fmt.Fprintln(w, "\nUsers (token = dev-<login>):")
	tw := e.table()
	fmt.Fprintln(tw, "  LOGIN\tTEAMS\tTOKEN")
	for _, login := range slices.Sorted(maps.Keys(cfg.Identity.Static.Users)) {
		u := cfg.Identity.Static.Users[login]
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", login, strings.Join(u.Teams, ","), u.Token)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nHost groups:")
	tw = e.table()
	fmt.Fprintln(tw, "  GROUP\tPRINCIPALS\tREQUESTERS\tAPPROVERS\tAPPROVALS\tCERT TTL\tMAX GRANT")
	for _, name := range slices.Sorted(maps.Keys(cfg.HostGroups)) {
		g := cfg.HostGroups[name]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\n", name, strings.Join(g.Principals, ","), strings.Join(g.Requesters, ","),
			strings.Join(g.Approvers, ","), *g.ApprovalsRequired, time.Duration(g.CertTTL), time.Duration(g.MaxDuration))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nTry:  export JIT_SSH_SERVER=%s JIT_SSH_TOKEN=dev-alice; jit-ssh login staging\n\n", url)
}

// serverGC tunes the garbage collector for the server unless GOGC or
// GOMEMLIMIT say otherwise. Its live heap is a few MiB, so the default
// (collect when the heap doubles) collects every few hundred certificates
// and hundreds of times per large export (1.5 KB of garbage per row):
// collecting at 5x the live heap took a 1,000,000-certificate export from
// 7.7 to 5.7-6.1 s for 30 -> 44 MB of memory. The memory limit keeps the
// heap in bounds should the live heap ever grow.
func serverGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(512 << 20)
	}
}
