package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"
)

// rawSign is the floor: ssh.Certificate.SignCert with an ed25519 CA key
// (the key type of the embedded default and of `jit-ssh vault setup`), one
// goroutine per core, for d.
func rawSign(d time.Duration) (float64, error) {
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return 0, err
	}
	signer, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		return 0, err
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return 0, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return 0, err
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	deadline := start.Add(d)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				now := uint64(time.Now().Unix()) //nolint:gosec // positive
				c := &ssh.Certificate{
					Key: sp, Serial: uint64(n.Load() + 1), CertType: ssh.UserCert, //nolint:gosec // positive
					KeyId:           "jit-ssh:user=alice:group=staging:req=r-aaaaaaaaaaaaaaaa:by=",
					ValidPrincipals: []string{"staging"}, ValidAfter: now - 120, ValidBefore: now + 300,
					Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
				}
				if err := c.SignCert(rand.Reader, signer); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// row is one line of the table: a figure, its target and whether it is met.
type row struct {
	name, value, target string
	met                 *bool
}

func f64(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}

func check(ok bool) *bool { return &ok }

func rows(r *results) []row {
	if r.EmbeddedCertsPerS == 0 && r.VaultRatio != nil { // -only vault
		return vaultRows(r, nil)
	}
	rs := []row{
		{"raw_sign_per_s", fmt.Sprintf("%.0f", r.RawSignPerS), "(floor)", nil},
		{"embedded_certs_per_s", fmt.Sprintf("%.0f", r.EmbeddedCertsPerS), fmt.Sprintf(">= 0.25 x raw = %.0f", 0.25*r.RawSignPerS), check(r.EmbeddedCertsPerS >= 0.25*r.RawSignPerS)},
		{"embedded_p50_ms", fmt.Sprintf("%.1f", r.EmbeddedP50MS), "", nil},
		{"embedded_p99_ms", fmt.Sprintf("%.1f", r.EmbeddedP99MS), "<= 20", check(r.EmbeddedP99MS <= 20)},
	}
	rs = vaultRows(r, rs)
	rs = append(rs,
		row{"login_p50_ms", fmt.Sprintf("%.1f", r.LoginP50MS), "<= 25", check(r.LoginP50MS <= 25)},
		row{"login_p99_ms", fmt.Sprintf("%.1f", r.LoginP99MS), "<= 60", check(r.LoginP99MS <= 60)},
		row{"ensure_p50_ms", fmt.Sprintf("%.1f", r.EnsureP50MS), "< 10", check(r.EnsureP50MS < 10)},
		row{"audit_user_query_ms", fmt.Sprintf("%.1f", r.AuditUserQueryMS), fmt.Sprintf("<= 2 x sqlite3 = %.1f", 2*r.SQLiteCLIQueryMS), check(r.AuditUserQueryMS <= 2*r.SQLiteCLIQueryMS)},
		row{"sqlite_cli_query_ms", fmt.Sprintf("%.1f", r.SQLiteCLIQueryMS), "(floor)", nil},
		row{"audit_valid_at_ms", fmt.Sprintf("%.1f", r.AuditValidAtMS), "<= 50", check(r.AuditValidAtMS <= 50)},
		row{"audit_export_s", fmt.Sprintf("%.2f", r.AuditExportS), "<= 5", check(r.AuditExportS <= 5)},
		row{"audit_export_rss_mb", fmt.Sprintf("%.1f", r.AuditExportRSSMB), "<= 64", check(r.AuditExportRSSMB <= 64)},
		row{"server_rss_mb", fmt.Sprintf("%.1f", r.ServerRSSMB), "<= 80", check(r.ServerRSSMB <= 80)},
		row{"issuance_slowdown_1m", fmt.Sprintf("%.2f", r.IssuanceSlowdown1M), ">= 0.9", check(r.IssuanceSlowdown1M >= 0.9)},
	)
	if strings.HasSuffix(r.Mode, "login only") {
		var only []row
		for _, x := range rs {
			if strings.HasPrefix(x.name, "login_") || strings.HasPrefix(x.name, "ensure_") {
				only = append(only, x)
			}
		}
		return only
	}
	return rs
}

// vaultRows appends the rows of the Vault comparisons that ran to rs.
func vaultRows(r *results, rs []row) []row {
	if r.VaultRatio != nil {
		rs = append(rs,
			row{"vault_raw_per_s", fmt.Sprintf("%.0f", f64(r.VaultRawPerS)), "(floor)", nil},
			row{"vault_jit_per_s", fmt.Sprintf("%.0f", f64(r.VaultJITPerS)), "", nil},
			row{"vault_ratio", fmt.Sprintf("%.2f", f64(r.VaultRatio)), ">= 0.9", check(f64(r.VaultRatio) >= 0.9)},
			row{"vault_raw_p99_ms", fmt.Sprintf("%.1f", f64(r.VaultRawP99MS)), "", nil},
			row{"vault_jit_p99_ms", fmt.Sprintf("%.1f", f64(r.VaultJITP99MS)), "", nil},
		)
	}
	if r.VaultPinnedRatio != nil {
		us := r.Details.JITServerPinnedCPUUSVault
		rs = append(rs,
			row{"vault_pinned_raw_per_s", fmt.Sprintf("%.0f", f64(r.VaultPinnedRawPerS)), "(floor)", nil},
			row{"vault_pinned_jit_per_s", fmt.Sprintf("%.0f", f64(r.VaultPinnedJITPerS)), "", nil},
			row{"vault_pinned_ratio", fmt.Sprintf("%.2f", f64(r.VaultPinnedRatio)), ">= 0.9", check(f64(r.VaultPinnedRatio) >= 0.9)},
			row{"details.jit_server_pinned_cpu_us_per_cert_vault_signer", fmt.Sprintf("%.0f", us), "<= 300", check(us <= 300)},
		)
	}
	return rs
}

func verdict(m *bool) string {
	switch {
	case m == nil:
		return ""
	case *m:
		return "met"
	default:
		return "MISSED"
	}
}

// printTable prints the figures against the targets of issue #7, as an
// aligned table or (markdown) as the README's Markdown table.
func printTable(w io.Writer, r *results, markdown bool) {
	d := r.Details
	header := fmt.Sprintf("%s run, %s; %d x %s, %s; load average %s at start, %s at end; %d clients, %.0fs per load phase; ledger %d certificates",
		r.Mode, r.Timestamp, r.Machine.Cores, r.Machine.CPUModel, r.Machine.GoVersion, d.LoadAverageAtStart, d.LoadAverageAtEnd,
		d.Workers, d.LoadSeconds, d.LedgerRows)
	if markdown {
		fmt.Fprintf(w, "_%s_\n\n", header)
		fmt.Fprintln(w, "| figure | value | target | |")
		fmt.Fprintln(w, "|---|---:|---|---|")
		for _, x := range rows(r) {
			fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", x.name, x.value, x.target, verdict(x.met))
		}
	} else {
		fmt.Fprintln(w, header)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET\t")
		for _, x := range rows(r) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.name, x.value, x.target, verdict(x.met))
		}
		_ = tw.Flush()
	}
	if !strings.HasSuffix(r.Mode, "login only") {
		fmt.Fprintf(w, "\nCPU per certificate: embedded server %.0f us (+ %.0f us in the bench's clients)", d.EmbeddedServerCPUUS, d.EmbeddedClientCPUUS)
	}
	if r.VaultRatio != nil {
		fmt.Fprintf(w, "; Vault straight %.0f us in Vault (+ %.0f us clients); through jit-ssh %.0f us in Vault + %.0f us in jit-ssh (+ %.0f us clients)",
			d.VaultCPUUSRaw, d.VaultClientCPUUSRaw, d.VaultCPUUSViaJIT, d.JITServerCPUUSVault, d.VaultClientCPUUSJIT)
	}
	if r.VaultPinnedRatio != nil {
		fmt.Fprintf(w, "\nPinned (Vault on CPU 0; jit-ssh and the clients on CPU 1): Vault straight %.0f us in Vault (+ %.0f us clients), Vault's CPU %.0f%% busy; through jit-ssh %.0f us in Vault + %.0f us in jit-ssh (+ %.0f us clients), Vault's CPU %.0f%% busy, jit-ssh's %.0f%%",
			d.VaultPinnedCPUUSRaw, d.VaultPinnedClientCPUUSRaw, 100*d.VaultPinnedBusyRaw,
			d.VaultPinnedCPUUSViaJIT, d.JITServerPinnedCPUUSVault, d.VaultPinnedClientCPUUSJIT, 100*d.VaultPinnedBusyViaJIT, 100*d.JITPinnedBusy)
	}
	fmt.Fprintf(w, "\nFloors of the CLI figures: 'jit-ssh version' (process start) %.1f ms median; the user query over HTTP alone %.1f ms\n",
		d.ProcessStartMS, d.UserQueryHTTPMS)
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "\nskipped: %s\n", s)
	}
}
