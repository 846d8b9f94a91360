package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jit-ssh/jit-ssh/ca/api"
)

func newAuditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Query the ledger: issued certificates and who approved them",
	}
	cmd.AddCommand(newAuditCertsCmd(e), newAuditEventsCmd(e), newAuditShowCmd(e), newAuditVerifyCmd(e), newAuditReportCmd(e))
	return cmd
}

// timeFlag parses an RFC 3339 time or a duration meaning "that long ago".
func timeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, &usageError{fmt.Errorf("--%s %q: give an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h)", name, v)}
}

func newAuditCertsCmd(e *env) *cobra.Command {
	var f api.CertificateFilter
	var since, until, validAt string
	cmd := &cobra.Command{
		Use:   "certs [--user U] [--group G] [--since T] [--until T] [--valid-at T]",
		Short: "List issued certificates (auditors see all, others their own)",
		Long: `List issued certificates, newest first. --valid-at T answers "who could reach
GROUP at T, approved by whom". Times are RFC 3339 or a duration ago (24h).
--output json prints one object per line, ready for a SIEM; --output csv a
CSV table.`,
		Annotations: map[string]string{csvOK: "yes"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			var err error
			if f.Since, err = timeFlag("since", since, now); err != nil {
				return err
			}
			if f.Until, err = timeFlag("until", until, now); err != nil {
				return err
			}
			if f.ValidAt, err = timeFlag("valid-at", validAt, now); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			switch e.output {
			case "json":
				// Buffered, and the server's lines copied through as they
				// are: an export is often a million lines into a pipe.
				bw := bufio.NewWriterSize(e.stdout, 64<<10)
				err := c.ListCertificatesJSON(cmd.Context(), f, func(line []byte) error {
					_, _ = bw.Write(line)
					return bw.WriteByte('\n')
				})
				return errors.Join(err, bw.Flush())
			case "csv":
				w := csv.NewWriter(e.stdout)
				_ = w.Write(certCSVHeader)
				err := c.ListCertificates(cmd.Context(), f, func(cert api.Certificate) error { return w.Write(certCSVRow(cert)) })
				w.Flush()
				return errors.Join(err, w.Error())
			}
			tw := e.table()
			fmt.Fprintln(tw, "SERIAL\tGROUP\tREQUESTER\tAPPROVERS\tREQUEST\tISSUED\tVALID BEFORE\tREVOKED\tREASON")
			err = c.ListCertificates(cmd.Context(), f, func(cert api.Certificate) error {
				_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(cert.Serial), cell(cert.HostGroup), cell(cert.Requester),
					cell(strings.Join(cert.Approvers, ",")), cell(cert.RequestID), cert.IssuedAt.UTC().Format(time.RFC3339),
					cert.ValidBefore.UTC().Format(time.RFC3339), fmtTime(cert.RevokedAt), oneLine(cert.Reason, 60))
				return err
			})
			if ferr := tw.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.Flags().StringVar(&f.User, "user", "", "only certificates of this requester")
	cmd.Flags().StringVar(&f.Group, "group", "", "only certificates for this host group")
	cmd.Flags().StringVar(&since, "since", "", "issued at or after T")
	cmd.Flags().StringVar(&until, "until", "", "issued before T")
	cmd.Flags().StringVar(&validAt, "valid-at", "", "valid (and not revoked) at T")
	return cmd
}

func newCACmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "CA information",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "pubkey",
		Short: "Print the CA public key(s) hosts should trust, in authorized_keys form",
		Long: `Print every CA public key hosts should trust: the current signing key and any
previous key still trusted during a rotation. The output is a valid
TrustedUserCAKeys file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			resp, err := c.CA(cmd.Context())
			if err != nil {
				return err
			}
			for _, k := range resp.Keys {
				if e.output == "json" {
					if err := e.printJSON(k); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintln(e.stdout, k.PublicKey)
			}
			return nil
		},
	})
	return cmd
}
