// The audit subcommands on the ledger itself: its event log (events, show),
// its integrity (verify) and the access figures drawn from it (report).

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/store/postgres"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// csvOK marks commands that accept --output csv.
const csvOK = "csv"

var certCSVHeader = []string{"serial", "key_id", "host_group", "principals", "valid_after", "valid_before", "requester", "request_id", "approvers", "fingerprint", "issued_at", "revoked_at", "reason"}

func certCSVRow(c api.Certificate) []string {
	return []string{c.Serial, c.KeyID, c.HostGroup, strings.Join(c.Principals, " "), c.ValidAfter.UTC().Format(time.RFC3339),
		c.ValidBefore.UTC().Format(time.RFC3339), c.Requester, c.RequestID, strings.Join(c.Approvers, " "), c.Fingerprint,
		c.IssuedAt.UTC().Format(time.RFC3339), fmtTime(c.RevokedAt), c.Reason}
}

func newAuditEventsCmd(e *env) *cobra.Command {
	var user, group, typ, requestID, since, until string
	cmd := &cobra.Command{
		Use:   "events [--user U] [--group G] [--type T] [--request ID] [--since T] [--until T]",
		Short: "List the audit event log (auditors see all, others their own)",
		Long: `List every recorded state change in log order: requests created, edited,
cancelled and expired, each review, grants started and ended, certificates
issued, issuances refused with their reason, revocations, configuration loads.
--output json prints one object per line; --output csv a CSV table.`,
		Annotations: map[string]string{csvOK: "yes"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			q := url.Values{}
			for k, v := range map[string]string{"user": user, "group": group, "type": typ, "request_id": requestID} {
				if v != "" {
					q.Set(k, v)
				}
			}
			for name, v := range map[string]string{"since": since, "until": until} {
				t, err := timeFlag(name, v, now)
				if err != nil {
					return err
				}
				if !t.IsZero() {
					q.Set(name, t.UTC().Format(time.RFC3339))
				}
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			switch e.output {
			case "json":
				return c.ListEvents(cmd.Context(), q, func(ev api.Event) error { return e.printJSON(ev) })
			case "csv":
				w := csv.NewWriter(e.stdout)
				_ = w.Write([]string{"id", "time", "actor", "type", "request_id", "serial", "data"})
				err := c.ListEvents(cmd.Context(), q, func(ev api.Event) error {
					return w.Write([]string{strconv.FormatInt(ev.ID, 10), ev.Time.UTC().Format(time.RFC3339Nano), ev.Actor, ev.Type, ev.RequestID, ev.Serial, compactData(ev.Data)})
				})
				w.Flush()
				return errors.Join(err, w.Error())
			}
			tw := e.table()
			fmt.Fprintln(tw, "ID\tTIME\tACTOR\tTYPE\tREQUEST\tSERIAL\tDETAILS")
			err = c.ListEvents(cmd.Context(), q, func(ev api.Event) error {
				_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.ID, ev.Time.UTC().Format(time.RFC3339), cell(ev.Actor), cell(ev.Type),
					cell(ev.RequestID), cell(ev.Serial), oneLine(compactData(ev.Data), 100))
				return err
			})
			return errors.Join(err, tw.Flush())
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only events by this actor")
	cmd.Flags().StringVar(&group, "group", "", "only events of requests for this host group")
	cmd.Flags().StringVar(&typ, "type", "", "only events of this type (e.g. certificate.issued)")
	cmd.Flags().StringVar(&requestID, "request", "", "only events of this request")
	cmd.Flags().StringVar(&since, "since", "", "at or after T (RFC 3339 or a duration ago)")
	cmd.Flags().StringVar(&until, "until", "", "before T")
	return cmd
}

// compactData renders event data as k=v pairs in a stable order.
func compactData(d map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, d[k]))
	}
	return strings.Join(parts, " ")
}

func newAuditShowCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "show SERIAL-or-KEYID",
		Short: "Show one certificate's whole story: request, reviews, events, revocation",
		Long: `Show the full story behind a certificate, found by its serial or by the KeyId
an sshd log line carries (ID jit-ssh:user=...:group=...:req=...:by=...).`,
		Example: `  jit-ssh audit show 4312454256429954134
  jit-ssh audit show 'jit-ssh:user=alice:group=prod-db:req=r-bucnq36mmjctncpz:by=bob'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAuditShow(cmd.Context(), e, args[0])
		},
	}
}

type story struct {
	Certificates []api.Certificate `json:"certificates"`
	Request      *api.Request      `json:"request"`
	Events       []api.Event       `json:"events"`
}

func runAuditShow(ctx context.Context, e *env, key string) error {
	f := api.CertificateFilter{}
	if serial, err := strconv.ParseUint(key, 10, 64); err == nil {
		f.Serial = serial
	} else if strings.HasPrefix(key, "jit-ssh:") {
		f.KeyID = key
	} else {
		return &usageError{fmt.Errorf("%q is neither a serial number nor a jit-ssh KeyId", key)}
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	var s story
	if err := c.ListCertificates(ctx, f, func(cert api.Certificate) error { s.Certificates = append(s.Certificates, cert); return nil }); err != nil {
		return err
	}
	if len(s.Certificates) == 0 {
		return fmt.Errorf("no certificate %s in the ledger (or not one you may see)", key)
	}
	reqID := s.Certificates[0].RequestID
	if s.Request, err = c.GetRequest(ctx, reqID, 0, 0); err != nil {
		return err
	}
	if err := c.ListEvents(ctx, url.Values{"request_id": {reqID}}, func(ev api.Event) error { s.Events = append(s.Events, ev); return nil }); err != nil {
		return err
	}
	if e.output == "json" {
		return e.printJSON(s)
	}
	for _, cert := range s.Certificates {
		tw := e.table()
		fmt.Fprintf(tw, "Certificate:\t%s\n", cell(cert.Serial))
		fmt.Fprintf(tw, "Key ID:\t%s\n", cell(cert.KeyID))
		fmt.Fprintf(tw, "Host group:\t%s (principals %s)\n", cell(cert.HostGroup), cell(strings.Join(cert.Principals, ",")))
		fmt.Fprintf(tw, "Requester:\t%s\n", cell(cert.Requester))
		fmt.Fprintf(tw, "Approved by:\t%s\n", cell(strings.Join(cert.Approvers, ", ")))
		fmt.Fprintf(tw, "Valid:\t%s to %s\n", cert.ValidAfter.UTC().Format(time.RFC3339), cert.ValidBefore.UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "Issued:\t%s\n", cert.IssuedAt.UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "Key:\t%s\n", cell(cert.Fingerprint))
		fmt.Fprintf(tw, "Revoked:\t%s\n", fmtTime(cert.RevokedAt))
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
	}
	if err := e.printRequest(s.Request); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "\nEvents:")
	tw := e.table()
	for _, ev := range s.Events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), cell(ev.Actor), cell(ev.Type), oneLine(compactData(ev.Data), 120))
	}
	return tw.Flush()
}

func newAuditVerifyCmd(e *env) *cobra.Command {
	var ledger, checkpoints string
	var keyFiles []string
	cmd := &cobra.Command{
		Use:   "verify [--ledger FILE [--checkpoints FILE] [--checkpoint-key FILE]]",
		Short: "Check the ledger's hash chain and signed checkpoints; exit 1 naming the first bad row on tamper",
		Long: `Walk the event log's hash chain and check every row: an edited, deleted,
inserted or reordered row breaks it, and the first bad row is named. Then
check every signed checkpoint of the chain head (kept in the ledger and in
the sidecar file FILE.checkpoints): a checkpoint past the last row means rows
were deleted from the end; one whose row hash differs means the chain was
recomputed after an edit. Last, check every request, review and certificate
row against the newest event that records it: a row edited, inserted or
deleted outside the server is named by table and key.

With --ledger the check runs locally, read-only, on a ledger file (a copy is
fine) or, given a postgres:// URL, on a PostgreSQL ledger (the password can
come from PGPASSWORD or ~/.pgpass instead of the URL); otherwise the server
checks its own ledger (auditors only).
--checkpoints names a copy of the sidecar kept elsewhere (off the host, out of
an attacker's reach). --checkpoint-key pins the key checkpoints must be
signed by (the output of 'jit-ssh ca pubkey' for a file CA key, or the
server's checkpoint_ed25519.pub with Vault); without it each checkpoint is
checked against the key it carries and the keys seen are printed.`,
		Example: `  jit-ssh audit verify
  jit-ssh audit verify --ledger /backup/ledger.db --checkpoint-key ca.pub
  jit-ssh audit verify --ledger ledger.db --checkpoints /mnt/siem/ledger.db.checkpoints
  jit-ssh audit verify --ledger postgres://auditor@db:5432/jit?sslmode=verify-full --checkpoint-key ca.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ledger == "" && (checkpoints != "" || len(keyFiles) > 0) {
				return &usageError{errors.New("--checkpoints and --checkpoint-key need --ledger FILE")}
			}
			var res api.VerifyResult
			if ledger != "" {
				r, err := verifyLocal(cmd.Context(), ledger, checkpoints, keyFiles)
				if err != nil {
					return err
				}
				res = r
			} else {
				c, err := e.client()
				if err != nil {
					return err
				}
				r, err := c.Verify(cmd.Context())
				if err != nil {
					return err
				}
				res = *r
			}
			if e.output == "json" {
				if err := e.printJSON(res); err != nil {
					return err
				}
			} else if res.OK {
				fmt.Fprintf(e.stdout, "Ledger verified: %d events, chain intact (head %s).\n", res.Rows, res.Head)
				if res.RowsChecked {
					fmt.Fprintf(e.stdout, "Rows: %d requests, %d reviews and %d certificates, each matching the newest event that records it.\n", res.Requests, res.Reviews, res.Certificates)
				} else {
					fmt.Fprintln(e.stdout, "Rows not checked: this ledger predates row bindings (jit-ssh serve adds them when it upgrades the ledger).")
				}
				if res.Checkpoints+res.SidecarCheckpoints == 0 {
					fmt.Fprintln(e.stdout, "No signed checkpoints: deleting rows from the end of the log would go unnoticed.")
				} else {
					fmt.Fprintf(e.stdout, "Checkpoints: %d in the ledger, %d in the sidecar, all matching; newest at row %d (%s), %d rows after it; signed by %s.\n",
						res.Checkpoints, res.SidecarCheckpoints, res.LastCheckpointRow, fmtTime(res.LastCheckpointAt), res.UnanchoredRows, strings.Join(res.CheckpointKeys, ", "))
				}
			}
			if !res.OK {
				if res.BadTable != "" {
					return fmt.Errorf("ledger verification FAILED at %s row %s: %s", res.BadTable, res.BadKey, res.Problem)
				}
				return fmt.Errorf("ledger verification FAILED at event row %d: %s", res.BadRow, res.Problem)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ledger, "ledger", "", "verify this ledger file (or postgres:// URL) locally instead of asking the server")
	cmd.Flags().StringVar(&checkpoints, "checkpoints", "", "checkpoint sidecar file (default: the ledger's path + .checkpoints)")
	cmd.Flags().StringArrayVar(&keyFiles, "checkpoint-key", nil, "trust only checkpoints signed by the key(s) in this authorized_keys-format file (repeatable)")
	return cmd
}

// verifyLocal verifies a ledger file, or a PostgreSQL ledger, read-only.
func verifyLocal(ctx context.Context, ledger, checkpoints string, keyFiles []string) (api.VerifyResult, error) {
	if postgres.IsDSN(ledger) {
		return verifyPostgres(ctx, ledger, checkpoints, keyFiles)
	}
	opts := []sqlite.Option{}
	if checkpoints != "" {
		if _, err := os.Stat(checkpoints); err != nil {
			return api.VerifyResult{}, fmt.Errorf("reading the checkpoint file: %w", err)
		}
		opts = append(opts, sqlite.WithCheckpointFile(checkpoints))
	}
	for _, f := range keyFiles {
		keys, err := readPublicKeys(f)
		if err != nil {
			return api.VerifyResult{}, err
		}
		opts = append(opts, sqlite.WithCheckpointKeys(keys...))
	}
	db, err := sqlite.OpenReadOnly(ctx, ledger, opts...)
	if err != nil {
		return api.VerifyResult{}, fmt.Errorf("opening the ledger %s: %w", ledger, err)
	}
	defer db.Close()
	return api.NewVerifyResult(db.Verify(ctx))
}

// verifyPostgres verifies the PostgreSQL ledger at dsn read-only. Its
// checkpoints are in the database: there is no sidecar file.
func verifyPostgres(ctx context.Context, dsn, checkpoints string, keyFiles []string) (api.VerifyResult, error) {
	if checkpoints != "" {
		return api.VerifyResult{}, &usageError{errors.New("--checkpoints names the sidecar of a ledger file; a PostgreSQL ledger keeps its checkpoints in the database")}
	}
	var opts []postgres.Option
	for _, f := range keyFiles {
		keys, err := readPublicKeys(f)
		if err != nil {
			return api.VerifyResult{}, err
		}
		opts = append(opts, postgres.WithCheckpointKeys(keys...))
	}
	db, err := postgres.OpenReadOnly(ctx, dsn, opts...)
	if err != nil {
		return api.VerifyResult{}, fmt.Errorf("opening the ledger (%s): %w", postgres.Describe(dsn), err)
	}
	defer db.Close()
	return api.NewVerifyResult(db.Verify(ctx))
}

// readPublicKeys reads every key of an authorized_keys-format file.
func readPublicKeys(path string) ([]ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint key: %w", err)
	}
	var keys []ssh.PublicKey
	for rest := data; len(bytes.TrimSpace(rest)) > 0; {
		k, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			return nil, fmt.Errorf("checkpoint key file %s: %w (want public keys in authorized_keys form, as 'jit-ssh ca pubkey' prints)", path, err)
		}
		keys, rest = append(keys, k), r
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("checkpoint key file %s holds no public key", path)
	}
	return keys, nil
}

func newAuditReportCmd(e *env) *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "report [--since T]",
		Short: "The figures that show JIT access is working",
		Long: `Requests, approval rate, median and p95 time from request to approval, median
grant length, certificates issued, standing grants open now (which should
be zero outside active work), break-glass grants with the median time to their
follow-up review, and the follow-ups overdue now (of any age).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := timeFlag("since", since, time.Now())
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			r, err := c.Report(cmd.Context(), t)
			if err != nil {
				return err
			}
			if e.output == "json" {
				return e.printJSON(r)
			}
			tw := e.table()
			fmt.Fprintf(tw, "Since:\t%s\n", fmtTime(r.Since))
			fmt.Fprintf(tw, "Requests:\t%d (approved %d, denied %d, expired %d, cancelled %d, pending %d)\n", r.Requests, r.Approved, r.Denied, r.Expired, r.Cancelled, r.Pending)
			fmt.Fprintf(tw, "Approval rate:\t%.0f%%\n", 100*r.ApprovalRate)
			fmt.Fprintf(tw, "Request to approval:\tmedian %s, p95 %s\n", secs(r.MedianToApprovalSeconds), secs(r.P95ToApprovalSeconds))
			fmt.Fprintf(tw, "Median grant length:\t%s\n", secs(r.MedianGrantLengthSeconds))
			fmt.Fprintf(tw, "Certificates issued:\t%d\n", r.CertsIssued)
			fmt.Fprintf(tw, "Grants open now:\t%d\n", r.OpenGrantsNow)
			fmt.Fprintf(tw, "Break-glass grants:\t%d (median time to follow-up review %s)\n", r.BreakGlass, secs(r.MedianToFollowUpSeconds))
			fmt.Fprintf(tw, "Overdue follow-ups:\t%d\n", len(r.OverdueFollowUps))
			for _, o := range r.OverdueFollowUps {
				fmt.Fprintf(tw, "  %s\t%s by %s, due %s\n", cell(o.RequestID), cell(o.HostGroup), cell(o.Requester), o.DueAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only requests created at or after T (RFC 3339 or a duration ago)")
	return cmd
}

func secs(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
