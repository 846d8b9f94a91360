// Command bench measures jit-ssh side by side with what a user would
// otherwise run, in one run on one machine: the raw SSH signature, the
// embedded default under load, Vault's own ssh/sign against jit-ssh with the
// Vault signer (sharing both CPUs, then pinned: Vault on CPU 0, jit-ssh and
// the clients on CPU 1), the whole `jit-ssh login` process with a real ssh-agent, and
// audit queries on a generated ledger against the sqlite3 CLI on the same
// file. It starts every server it needs, prints a table (Markdown with
// -markdown) and writes one JSON object to bench/last.json.
//
//	go run ./test/bench -jit bin/jit-ssh -vault bin/vault          # make bench
//	go run ./test/bench -quick -jit bin/jit-ssh -vault bin/vault   # make bench-quick
//	go run ./test/bench -only login -jit bin/jit-ssh -out /tmp/b.json # the login figures alone
//	go run ./test/bench -quick -only vault -jit bin/jit-ssh -vault bin/vault  # the Vault comparisons alone
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
)

// config is what the flags choose.
type config struct {
	quick      bool
	jit        string
	vault      string
	out        string
	markdown   bool
	workers    int
	loadDur    time.Duration
	rounds     int
	loginRuns  int
	ledgerRows int
	auditRuns  int
	keep       bool
	only       string
}

func main() {
	var c config
	flag.BoolVar(&c.quick, "quick", false, "a subset in under a minute: shorter loads, fewer runs, a 100k-certificate ledger")
	flag.StringVar(&c.jit, "jit", "bin/jit-ssh", "the jit-ssh binary to measure")
	flag.StringVar(&c.vault, "vault", "bin/vault", "the Vault binary (built once by make vault)")
	flag.StringVar(&c.out, "out", "bench/last.json", "where to write the JSON figures")
	flag.BoolVar(&c.markdown, "markdown", false, "print the table in Markdown (for the README's Performance section)")
	flag.IntVar(&c.workers, "workers", 16, "concurrent clients of the load phases")
	flag.IntVar(&c.ledgerRows, "ledger", 0, "certificates in the generated audit ledger (default 1,000,000; 100,000 with -quick)")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (ledgers and server logs) for inspection")
	flag.StringVar(&c.only, "only", "", "measure one part only: login (login_* and ensure_p50_ms, on the embedded default) or vault (the Vault comparisons, co-located and pinned)")
	from := flag.String("from", "", "print the table of an earlier run's JSON (e.g. bench/last.json) and exit")
	flag.Parse()
	if *from != "" {
		if err := reprint(*from, c.markdown); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if c.only != "" && c.only != "login" {
		fmt.Fprintf(os.Stderr, "bench: -only %q: the only part that runs alone is login\n", c.only)
		os.Exit(2)
	}
	if c.quick {
		c.loadDur, c.rounds, c.loginRuns, c.auditRuns = 2*time.Second, 2, 10, 3
		if c.ledgerRows == 0 {
			c.ledgerRows = 100_000
		}
	} else {
		c.loadDur, c.rounds, c.loginRuns, c.auditRuns = 5*time.Second, 3, 40, 7
		if c.ledgerRows == 0 {
			c.ledgerRows = 1_000_000
		}
	}
	if c.only != "" && c.only != "vault" {
		fmt.Fprintf(os.Stderr, "bench: -only %q: the only part is vault\n", c.only)
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// results is bench/last.json. Field names are the contract of issue #7.
type results struct {
	Timestamp string   `json:"timestamp"`
	Mode      string   `json:"mode"`
	Skipped   []string `json:"skipped"`
	Machine   machine  `json:"machine"`

	RawSignPerS float64 `json:"raw_sign_per_s"`

	EmbeddedCertsPerS float64 `json:"embedded_certs_per_s"`
	EmbeddedP50MS     float64 `json:"embedded_p50_ms"`
	EmbeddedP99MS     float64 `json:"embedded_p99_ms"`

	VaultRawPerS  *float64 `json:"vault_raw_per_s,omitempty"`
	VaultJITPerS  *float64 `json:"vault_jit_per_s,omitempty"`
	VaultRatio    *float64 `json:"vault_ratio,omitempty"`
	VaultRawP99MS *float64 `json:"vault_raw_p99_ms,omitempty"`
	VaultJITP99MS *float64 `json:"vault_jit_p99_ms,omitempty"`

	VaultPinnedRawPerS *float64 `json:"vault_pinned_raw_per_s,omitempty"`
	VaultPinnedJITPerS *float64 `json:"vault_pinned_jit_per_s,omitempty"`
	VaultPinnedRatio   *float64 `json:"vault_pinned_ratio,omitempty"`

	LoginP50MS float64 `json:"login_p50_ms"`
	LoginP99MS float64 `json:"login_p99_ms"`
	// EnsureP50MS is 'jit-ssh login --ensure' while the agent holds the
	// certificate: what ssh waits for before every connection.
	EnsureP50MS float64 `json:"ensure_p50_ms"`

	AuditUserQueryMS float64 `json:"audit_user_query_ms"`
	AuditValidAtMS   float64 `json:"audit_valid_at_ms"`
	AuditExportS     float64 `json:"audit_export_s"`
	AuditExportRSSMB float64 `json:"audit_export_rss_mb"`
	SQLiteCLIQueryMS float64 `json:"sqlite_cli_query_ms"`

	ServerRSSMB        float64 `json:"server_rss_mb"`
	IssuanceSlowdown1M float64 `json:"issuance_slowdown_1m"`

	Details details `json:"details"`
}

// details explains how the headline figures were taken.
type details struct {
	Workers             int     `json:"workers"`
	LoadSeconds         float64 `json:"load_seconds_per_phase"`
	EmbeddedRequests    int     `json:"embedded_requests"`
	EmbeddedErrors      int     `json:"embedded_errors"`
	VaultRounds         int     `json:"vault_interleaved_rounds"`
	VaultRawP50MS       float64 `json:"vault_raw_p50_ms,omitempty"`
	VaultJITP50MS       float64 `json:"vault_jit_p50_ms,omitempty"`
	LoginRuns           int     `json:"login_runs"`
	EnsureRuns          int     `json:"ensure_runs"`
	EnsureP99MS         float64 `json:"ensure_p99_ms"`
	ProcessStartMS      float64 `json:"jit_ssh_version_process_ms"`
	LedgerRows          int     `json:"ledger_rows"`
	LedgerGenerateS     float64 `json:"ledger_generate_s"`
	LedgerFileMB        float64 `json:"ledger_file_mb"`
	AuditRuns           int     `json:"audit_runs"`
	UserQueryRows       int     `json:"audit_user_query_rows"`
	UserQueryHTTPMS     float64 `json:"audit_user_query_http_ms"`
	ValidAtRows         int     `json:"audit_valid_at_rows"`
	ExportRows          int     `json:"audit_export_rows"`
	ExportCLIRSSMB      float64 `json:"audit_export_cli_rss_mb"`
	ExportServerRSSMB   float64 `json:"audit_export_server_rss_mb"`
	ServerPeakRSSMB     float64 `json:"server_peak_rss_mb"`
	SlowdownEmptyPerS   float64 `json:"slowdown_empty_certs_per_s"`
	SlowdownLedgerPerS  float64 `json:"slowdown_ledger_certs_per_s"`
	EmbeddedServerCPUUS float64 `json:"embedded_server_cpu_us_per_cert"`
	EmbeddedClientCPUUS float64 `json:"embedded_client_cpu_us_per_cert"`
	VaultCPUUSRaw       float64 `json:"vault_cpu_us_per_sign_raw"`
	VaultCPUUSViaJIT    float64 `json:"vault_cpu_us_per_sign_via_jit"`
	JITServerCPUUSVault float64 `json:"jit_server_cpu_us_per_cert_vault_signer"`
	VaultClientCPUUSRaw float64 `json:"vault_client_cpu_us_per_sign_raw"`
	VaultClientCPUUSJIT float64 `json:"vault_client_cpu_us_per_cert_via_jit"`

	VaultPinnedRawP50MS       float64 `json:"vault_pinned_raw_p50_ms,omitempty"`
	VaultPinnedJITP50MS       float64 `json:"vault_pinned_jit_p50_ms,omitempty"`
	VaultPinnedCPUUSRaw       float64 `json:"vault_pinned_cpu_us_per_sign_raw,omitempty"`
	VaultPinnedCPUUSViaJIT    float64 `json:"vault_pinned_cpu_us_per_sign_via_jit,omitempty"`
	JITServerPinnedCPUUSVault float64 `json:"jit_server_pinned_cpu_us_per_cert_vault_signer,omitempty"`
	VaultPinnedClientCPUUSRaw float64 `json:"vault_pinned_client_cpu_us_per_sign_raw,omitempty"`
	VaultPinnedClientCPUUSJIT float64 `json:"vault_pinned_client_cpu_us_per_cert_via_jit,omitempty"`
	VaultPinnedBusyRaw        float64 `json:"vault_pinned_vault_busy_raw,omitempty"`
	VaultPinnedBusyViaJIT     float64 `json:"vault_pinned_vault_busy_via_jit,omitempty"`
	JITPinnedBusy             float64 `json:"vault_pinned_jit_cpu_busy,omitempty"`

	LoadAverageAtStart string   `json:"load_average_at_start"`
	LoadAverageAtEnd   string   `json:"load_average_at_end"`
	Notes              []string `json:"notes"`
}

type machine struct {
	Cores     int    `json:"cores"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(c config) error {
	ctx := context.Background()
	for _, p := range []*string{&c.jit, &c.vault, &c.out} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if _, err := os.Stat(c.jit); err != nil {
		return fmt.Errorf("no jit-ssh binary at %s; run make build", c.jit)
	}
	sqlite3, err := sqlite3Bin()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "jit-bench-")
	if err != nil {
		return err
	}
	if c.keep {
		step("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	r := &results{
		Timestamp: time.Now().UTC().Format(time.RFC3339),
		Mode:      map[bool]string{true: "quick", false: "full"}[c.quick] + map[bool]string{true: ", login only", false: ""}[c.only == "login"],
		Skipped:   []string{},
		Machine:   machine{Cores: runtime.NumCPU(), CPUModel: cpuModel(), GoVersion: goVersion(), OS: runtime.GOOS + "/" + runtime.GOARCH},
	}
	r.Details.Workers, r.Details.LoadSeconds = c.workers, c.loadDur.Seconds()
	r.Details.LoadAverageAtStart = loadAvg()
	r.Details.Notes = []string{}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	if c.only == "login" {
		emb, err := startJIT(c.jit, filepath.Join(tmp, "embedded"), "", nil, "")
		if err != nil {
			return err
		}
		stops = append(stops, emb.stop)
		if err := loginPhase(ctx, c, r, emb, tmp); err != nil {
			return err
		}
		r.Skipped = append(r.Skipped, "-only login: every figure but login_* and ensure_p50_ms")
		r.Details.LoadAverageAtEnd = loadAvg()
		printTable(os.Stdout, r, c.markdown)
		return writeJSON(c.out, r)
	}
	keys, err := subjectKeys(256)
	if err != nil {
		return err
	}
	if c.only == "vault" {
		step("Vault: ssh/sign straight and through jit-ssh, interleaved, %d rounds of %s each", c.rounds, c.loadDur)
		if err := measureVault(ctx, c, r, tmp, keys, &stops); err != nil {
			return err
		}
		r.Skipped = append(r.Skipped, "-only vault: only the Vault comparisons ran; every other figure is 0")
		r.Details.LoadAverageAtEnd = loadAvg()
		printTable(os.Stdout, r, c.markdown)
		return writeJSON(c.out, r)
	}

	step("raw SignCert, one goroutine per core, %s", c.loadDur)
	if r.RawSignPerS, err = rawSign(c.loadDur); err != nil {
		return err
	}

	step("embedded default: POST /v1/certificates, %d clients, %s", c.workers, c.loadDur)
	emb, err := startJIT(c.jit, filepath.Join(tmp, "embedded"), "", nil, "")
	if err != nil {
		return err
	}
	stops = append(stops, emb.stop)
	embReq, err := openGrant(ctx, emb.URL, "dev-alice")
	if err != nil {
		return err
	}
	embLoad, err := issueRequests(emb.URL, "dev-alice", embReq, keys)
	if err != nil {
		return err
	}
	hc := newHTTPClient(c.workers)
	_ = runLoad(hc, c.workers, c.loadDur/5, 201, embLoad) // warm-up
	m := meterCPU(emb.pid())
	e1 := runLoad(hc, c.workers, c.loadDur, 201, embLoad)
	if err := loadOK("embedded", e1); err != nil {
		return err
	}
	cpu := m.perOp(e1.N)
	r.Details.EmbeddedServerCPUUS, r.Details.EmbeddedClientCPUUS = cpu[0], cpu[1]
	r.EmbeddedCertsPerS, r.EmbeddedP50MS, r.EmbeddedP99MS = e1.perSec(), e1.pct(0.50), e1.pct(0.99)
	r.Details.EmbeddedRequests, r.Details.EmbeddedErrors = e1.N, e1.Errors
	r.ServerRSSMB = rssMB(emb.pid(), "VmRSS")
	r.Details.ServerPeakRSSMB = rssMB(emb.pid(), "VmHWM")

	if err := loginPhase(ctx, c, r, emb, tmp); err != nil {
		return err
	}

	step("Vault: ssh/sign straight and through jit-ssh, interleaved, %d rounds of %s each", c.rounds, c.loadDur)
	if err := measureVault(ctx, c, r, tmp, keys, &stops); err != nil {
		return err
	}

	step("audit: generating a ledger of %d certificates", c.ledgerRows)
	ledgerDir := filepath.Join(tmp, "ledger")
	if err := os.MkdirAll(ledgerDir, 0o700); err != nil {
		return err
	}
	ledger := filepath.Join(ledgerDir, "ledger.db")
	end := time.Now()
	t0 := time.Now()
	if err := generateLedger(ctx, sqlite3, ledger, c.ledgerRows, end); err != nil {
		return err
	}
	r.Details.LedgerGenerateS = time.Since(t0).Seconds()
	r.Details.LedgerRows = c.ledgerRows
	if st, err := os.Stat(ledger); err == nil {
		r.Details.LedgerFileMB = float64(st.Size()) / (1 << 20)
	}
	big, err := startJIT(c.jit, ledgerDir, "", nil, "")
	if err != nil {
		return err
	}
	stops = append(stops, big.stop)
	step("audit: queries through jit-ssh and the sqlite3 CLI, %d runs each; the export", c.auditRuns)
	a, err := measureAudit(ctx, c, big, sqlite3, ledger, c.ledgerRows, c.auditRuns, end)
	if err != nil {
		return err
	}
	r.AuditUserQueryMS, r.SQLiteCLIQueryMS, r.AuditValidAtMS = a.UserQueryMS, a.SQLiteMS, a.ValidAtMS
	r.AuditExportS, r.AuditExportRSSMB = a.ExportS, max(a.ExportCLIRSS, a.ExportServerRSS)
	r.Details.AuditRuns, r.Details.UserQueryRows, r.Details.UserQueryHTTPMS = c.auditRuns, a.UserRows, a.UserQueryHTTPMS
	r.Details.ValidAtRows, r.Details.ExportRows = a.ValidAtRows, a.ExportRows
	r.Details.ExportCLIRSSMB, r.Details.ExportServerRSSMB = a.ExportCLIRSS, a.ExportServerRSS

	step("issuance on the %d-certificate ledger against the small one, %s each", c.ledgerRows, c.loadDur)
	bigReq, err := openGrant(ctx, big.URL, "dev-alice")
	if err != nil {
		return err
	}
	bigLoad, err := issueRequests(big.URL, "dev-alice", bigReq, keys)
	if err != nil {
		return err
	}
	_ = runLoad(hc, c.workers, c.loadDur/5, 201, bigLoad)
	onBig := runLoad(hc, c.workers, c.loadDur, 201, bigLoad)
	if err := loadOK("issuance on the big ledger", onBig); err != nil {
		return err
	}
	e2 := runLoad(hc, c.workers, c.loadDur, 201, embLoad)
	if err := loadOK("embedded (second run)", e2); err != nil {
		return err
	}
	empty := (e1.perSec() + e2.perSec()) / 2
	r.IssuanceSlowdown1M = onBig.perSec() / empty
	r.Details.SlowdownEmptyPerS, r.Details.SlowdownLedgerPerS = empty, onBig.perSec()

	if c.quick {
		r.Skipped = append(r.Skipped, fmt.Sprintf("audit_* and issuance_slowdown_1m are measured on a %d-certificate ledger, not 1,000,000", c.ledgerRows))
		r.Details.Notes = append(r.Details.Notes, "quick mode: shorter loads and fewer runs; run make bench for the figures of record")
	}
	r.Details.Notes = append(r.Details.Notes,
		"audit_export_rss_mb is the larger of the CLI's peak RSS (rusage) and the server's RSS sampled every 20ms during the export (/proc VmRSS)",
		"audit_user_query_ms and sqlite_cli_query_ms are wall times of whole processes (jit-ssh audit certs --user U -o json; sqlite3 -readonly FILE QUERY), medians",
		"server_rss_mb is the embedded server's VmRSS right after its load phase")
	r.Details.LoadAverageAtEnd = loadAvg()

	printTable(os.Stdout, r, c.markdown)
	return writeJSON(c.out, r)
}

func loadOK(what string, res loadResult) error {
	if res.N == 0 || res.Errors*100 > res.N {
		return fmt.Errorf("%s: %d certificates, %d errors (first: %s)", what, res.N, res.Errors, res.FirstErr)
	}
	return nil
}

// openGrant files an auto-approved request for staging and returns its id.
func openGrant(ctx context.Context, base, token string) (string, error) {
	cl, err := api.NewClient(base, token)
	if err != nil {
		return "", err
	}
	req, err := cl.CreateRequest(ctx, api.CreateRequest{HostGroup: "staging", Duration: "1h", Reason: "bench load"})
	if err != nil {
		return "", fmt.Errorf("opening a grant: %w", err)
	}
	if req.State != "approved" {
		return "", fmt.Errorf("the staging request is %s, want approved by policy", req.State)
	}
	return req.ID, nil
}

// reprint prints the table of a results file.
func reprint(path string, markdown bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	printTable(os.Stdout, &r, markdown)
	return nil
}

func writeJSON(path string, r *results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil { //nolint:gosec // figures, not secrets
		return err
	}
	step("wrote %s", path)
	return nil
}

// loginPhase measures the login figures on srv, the embedded default.
func loginPhase(ctx context.Context, c config, r *results, srv *jitServer, tmp string) error {
	step("login: whole 'jit-ssh login staging' process with a real ssh-agent, %d runs; then 'login --ensure staging' with the certificate held", c.loginRuns)
	loginLat, ensureLat, startMS, err := measureLogin(ctx, c, srv, tmp)
	if err != nil {
		return err
	}
	r.LoginP50MS, r.LoginP99MS = loginLat.pct(0.50), loginLat.pct(0.99)
	r.Details.LoginRuns, r.Details.ProcessStartMS = loginLat.N, startMS
	r.EnsureP50MS, r.Details.EnsureP99MS, r.Details.EnsureRuns = ensureLat.pct(0.50), ensureLat.pct(0.99), ensureLat.N
	return nil
}

// measureLogin times whole `jit-ssh login staging` processes for erin on
// an open grant, with a real ssh-agent; then whole `jit-ssh login --ensure
// staging` processes while that agent holds the certificate. Those are
// given a server address nobody listens on and no token: one that reached
// for the network would fail, and so would the bench.
func measureLogin(ctx context.Context, c config, srv *jitServer, tmp string) (login, ensure loadResult, startMS float64, err error) {
	dir := filepath.Join(tmp, "login")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return login, ensure, 0, err
	}
	agent, sock, err := startAgent(dir)
	if err != nil {
		return login, ensure, 0, err
	}
	defer agent.stop()
	env := []string{"HOME=" + dir, "JIT_SSH_SERVER=" + srv.URL, "JIT_SSH_TOKEN=dev-erin", "SSH_AUTH_SOCK=" + sock}
	// The first login files the (auto-approved) request: not an open grant yet.
	if _, _, _, err := runTimed(ctx, env, c.jit, "login", "staging"); err != nil {
		return login, ensure, 0, err
	}
	var start []time.Duration
	for range c.loginRuns {
		d, _, _, err := runTimed(ctx, env, c.jit, "login", "staging")
		if err != nil {
			return login, ensure, 0, err
		}
		login.Lat = append(login.Lat, d)
		// The floor of any CLI command: starting the binary.
		d, _, _, err = runTimed(ctx, env, c.jit, "version")
		if err != nil {
			return login, ensure, 0, err
		}
		start = append(start, d)
	}
	login.N = len(login.Lat)
	login = login.merge(loadResult{})

	offline := []string{"HOME=" + dir, "JIT_SSH_SERVER=http://127.0.0.1:1", "SSH_AUTH_SOCK=" + sock}
	for range c.loginRuns {
		d, lines, _, err := runTimed(ctx, offline, c.jit, "login", "--ensure", "staging")
		if err != nil {
			return login, ensure, 0, fmt.Errorf("login --ensure with the certificate held: %w", err)
		}
		if lines != 0 {
			return login, ensure, 0, fmt.Errorf("login --ensure with the certificate held printed %d lines on stdout, want none", lines)
		}
		ensure.Lat = append(ensure.Lat, d)
	}
	ensure.N = len(ensure.Lat)
	ensure = ensure.merge(loadResult{})
	return login, ensure, median(start), nil
}
