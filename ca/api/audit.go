package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// AuditLedger is what the audit and revocation endpoints need.
type AuditLedger interface {
	ListEvents(ctx context.Context, f ca.EventFilter, fn func(*ca.Event) error) error
	Verify(ctx context.Context) (ca.VerifyResult, error)
	Report(ctx context.Context, since, now time.Time) (*ca.Report, error)
	Revoke(ctx context.Context, spec ca.RevokeSpec, actor, reason string, now time.Time) (*ca.Revocation, error)
	RevokedSerials(ctx context.Context, notAfter time.Time) (map[string][]uint64, uint64, error)
}

// Event is an audit event as the API shows it.
type Event struct {
	ID        int64          `json:"id"`
	Time      time.Time      `json:"time"`
	Actor     string         `json:"actor"`
	Type      string         `json:"type"`
	RequestID string         `json:"request_id,omitempty"`
	Serial    string         `json:"serial,omitempty"`
	Data      map[string]any `json:"data"`
}

// VerifyResult is the body of GET /v1/audit/verify.
type VerifyResult struct {
	OK     bool   `json:"ok"`
	Rows   int64  `json:"rows"`
	Head   string `json:"head,omitempty"`
	BadRow int64  `json:"bad_row,omitempty"`
	// BadTable and BadKey name the first row of another table that does
	// not match the event log (BadRow is then the event that binds it, if
	// any).
	BadTable string `json:"bad_table,omitempty"`
	BadKey   string `json:"bad_key,omitempty"`
	Problem  string `json:"problem,omitempty"`
	// Checkpoints and SidecarCheckpoints count the signed checkpoints
	// checked in the ledger and in its sidecar file.
	Checkpoints        int `json:"checkpoints"`
	SidecarCheckpoints int `json:"sidecar_checkpoints"`
	// LastCheckpointRow and LastCheckpointAt describe the newest valid
	// checkpoint; UnanchoredRows follow it.
	LastCheckpointRow int64      `json:"last_checkpoint_row,omitempty"`
	LastCheckpointAt  *time.Time `json:"last_checkpoint_at,omitempty"`
	UnanchoredRows    int64      `json:"unanchored_rows"`
	CheckpointKeys    []string   `json:"checkpoint_keys,omitempty"`
	// RowsChecked: the requests, reviews and certificates were checked
	// against the event log (false for a ledger older than row bindings);
	// the counts are of the rows checked.
	RowsChecked  bool  `json:"rows_checked"`
	Requests     int64 `json:"requests"`
	Reviews      int64 `json:"reviews"`
	Certificates int64 `json:"certificates"`
}

// NewVerifyResult turns the outcome of store.Verifier.Verify into the API's
// form. Errors other than a *store.ChainError are returned as they are.
func NewVerifyResult(res ca.VerifyResult, err error) (VerifyResult, error) {
	out := VerifyResult{OK: err == nil, Rows: res.Rows, Head: res.Head, Checkpoints: res.Checkpoints, SidecarCheckpoints: res.SidecarCheckpoints,
		LastCheckpointRow: res.LastCheckpointRow, LastCheckpointAt: timePtr(res.LastCheckpointAt), UnanchoredRows: res.Unanchored,
		CheckpointKeys: res.CheckpointKeys, RowsChecked: res.RowsChecked, Requests: res.Requests, Reviews: res.Reviews, Certificates: res.Certificates}
	var ce *store.ChainError
	switch {
	case errors.As(err, &ce):
		out.Head, out.BadRow, out.BadTable, out.BadKey, out.Problem = "", ce.Row, ce.Table, ce.Key, ce.Reason
	case err != nil:
		return out, err
	}
	return out, nil
}

// Report is the body of GET /v1/audit/report.
type Report struct {
	Since                    *time.Time `json:"since"`
	Requests                 int        `json:"requests"`
	Approved                 int        `json:"approved"`
	Denied                   int        `json:"denied"`
	Expired                  int        `json:"expired"`
	Cancelled                int        `json:"cancelled"`
	Pending                  int        `json:"pending"`
	ApprovalRate             float64    `json:"approval_rate"`
	MedianToApprovalSeconds  float64    `json:"median_to_approval_seconds"`
	P95ToApprovalSeconds     float64    `json:"p95_to_approval_seconds"`
	MedianGrantLengthSeconds float64    `json:"median_grant_length_seconds"`
	CertsIssued              int        `json:"certs_issued"`
	OpenGrantsNow            int        `json:"open_grants_now"`
}

// RevokeRequest is the body of POST /v1/revocations: exactly one of
// serial, request_id or user, and a reason.
type RevokeRequest struct {
	Serial    string `json:"serial,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	User      string `json:"user,omitempty"`
	Reason    string `json:"reason"`
}

// RevokeResult is the answer of POST /v1/revocations.
type RevokeResult struct {
	Revoked     []string `json:"revoked"`
	EndedGrants []string `json:"ended_grants"`
	// CancelledRequests are pending requests a revocation by request
	// cancelled, so they cannot be approved afterwards.
	CancelledRequests []string `json:"cancelled_requests,omitempty"`
}

// requireAuditor writes 403 and returns false unless login is an auditor.
func (s *Server) requireAuditor(w http.ResponseWriter, r *http.Request, login string) bool {
	ok, err := s.svc.IsAuditor(r.Context(), login)
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	if !ok {
		writeError(w, http.StatusForbidden, "not_an_auditor", login+" is not a member of an auditor team")
	}
	return ok
}

// ownUnlessAuditor scopes a listing: auditors may list anyone's, others
// only their own. asked is the user the caller filtered on ("" for none);
// a non-auditor asking for someone else gets 403 (written here, ok false).
// narrow reports that the listing must be limited to login.
func (s *Server) ownUnlessAuditor(w http.ResponseWriter, r *http.Request, login, asked, refusal string) (narrow, ok bool) {
	auditor, err := s.svc.IsAuditor(r.Context(), login)
	if err != nil {
		s.fail(w, r, err)
		return false, false
	}
	if auditor {
		return false, true
	}
	if asked != "" && asked != login {
		writeError(w, http.StatusForbidden, "not_an_auditor", refusal)
		return false, false
	}
	return true, true
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, login string) {
	q := r.URL.Query()
	f := ca.EventFilter{Actor: q.Get("user"), Type: q.Get("type"), RequestID: q.Get("request_id"), Group: q.Get("group")}
	var errs [3]error
	f.Since, errs[0] = parseTimeParam(q, "since")
	f.Until, errs[1] = parseTimeParam(q, "until")
	if v := q.Get("serial"); v != "" {
		f.Serial, errs[2] = strconv.ParseUint(v, 10, 64)
		if errs[2] != nil {
			errs[2] = fmt.Errorf("%w: serial must be a decimal number", errBadInput)
		}
	}
	if err := errors.Join(errs[:]...); err != nil {
		s.fail(w, r, err)
		return
	}
	narrow, ok := s.ownUnlessAuditor(w, r, login, f.Actor, "only auditors may read other users' events")
	if !ok {
		return
	}
	if narrow {
		// Others see their own story: what they did, and what happened
		// to their requests.
		f.Involving = login
	}
	s.stream(w, r, func(emit func(any) error) error {
		return s.audit.ListEvents(r.Context(), f, func(ev *ca.Event) error {
			out := Event{ID: ev.ID, Time: ev.Time, Actor: ev.Actor, Type: ev.Type, RequestID: ev.RequestID, Data: ev.Data}
			if ev.Serial != 0 {
				out.Serial = strconv.FormatUint(ev.Serial, 10)
			}
			return emit(out)
		})
	})
}

// stream writes NDJSON produced by fill. An error before the first line is
// a normal JSON error; after it, the connection is cut so the client sees a
// truncated listing rather than a silently short one.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, fill func(emit func(any) error) error) {
	started := false
	// Rows go out in 256 KiB chunks rather than one write per row: an
	// export of a million certificates is a million rows. Each chunk, not
	// each row, moves the write deadline (deadlineWriter).
	bw := bufio.NewWriterSize(deadlineWriter{w}, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := fill(func(v any) error {
		if !started {
			extendWrite(w, streamWriteSlack)
			w.Header().Set("Content-Type", "application/x-ndjson")
			started = true
		}
		// Rows that can write their own JSON (certificates) skip
		// encoding/json, appending straight into the buffer when it fits.
		if a, ok := v.(jsonAppender); ok {
			if line, ok := a.appendJSON(bw.AvailableBuffer()); ok {
				_, err := bw.Write(append(line, '\n'))
				return err
			}
		}
		return enc.Encode(v)
	})
	switch {
	case err == nil && !started:
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
	case err == nil:
		_ = bw.Flush() // a client that went away is not an error here
	case err != nil && !started:
		s.fail(w, r, err)
	case err != nil:
		s.log.LogAttrs(r.Context(), slog.LevelError, "listing failed mid-stream", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		panic(http.ErrAbortHandler)
	}
}

// deadlineWriter moves the connection's write deadline before each write:
// a streamed listing may take streamWriteSlack per chunk.
type deadlineWriter struct{ w http.ResponseWriter }

func (d deadlineWriter) Write(p []byte) (int, error) {
	extendWrite(d.w, streamWriteSlack)
	return d.w.Write(p)
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, login string) {
	if !s.requireAuditor(w, r, login) {
		return
	}
	res, err := NewVerifyResult(s.audit.Verify(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request, login string) {
	if !s.requireAuditor(w, r, login) {
		return
	}
	since, err := parseTimeParam(r.URL.Query(), "since")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.audit.Report(r.Context(), since, s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Report{
		Since: timePtr(since), Requests: rep.Requests, Approved: rep.Approved, Denied: rep.Denied, Expired: rep.Expired,
		Cancelled: rep.Cancelled, Pending: rep.Pending, ApprovalRate: rep.ApprovalRate,
		MedianToApprovalSeconds: rep.MedianToApproval.Seconds(), P95ToApprovalSeconds: rep.P95ToApproval.Seconds(),
		MedianGrantLengthSeconds: rep.MedianGrantLength.Seconds(), CertsIssued: rep.CertsIssued, OpenGrantsNow: rep.OpenGrantsNow,
	})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, login string) {
	var body RevokeRequest
	if err := decode(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	spec, err := s.authorizeRevocation(r.Context(), login, body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.audit.Revoke(r.Context(), spec, login, body.Reason, s.now().UTC())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := RevokeResult{Revoked: []string{}, EndedGrants: orEmpty(res.EndedGrants), CancelledRequests: res.Cancelled}
	for _, serial := range res.Serials {
		out.Revoked = append(out.Revoked, strconv.FormatUint(serial, 10))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "revoked", slog.String("actor", login), slog.Any("serials", out.Revoked),
		slog.Any("ended_grants", out.EndedGrants), slog.String("reason", body.Reason))
	writeJSON(w, http.StatusOK, out)
}

// authorizeRevocation checks the body and whether login may revoke it.
func (s *Server) authorizeRevocation(ctx context.Context, login string, body RevokeRequest) (ca.RevokeSpec, error) {
	n := 0
	for _, v := range []string{body.Serial, body.RequestID, body.User} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return ca.RevokeSpec{}, fmt.Errorf("%w: give exactly one of serial, request_id or user", errBadInput)
	}
	if body.Reason == "" || len(body.Reason) > 1000 {
		return ca.RevokeSpec{}, fmt.Errorf("%w: a reason (at most 1000 characters) is required", errBadInput)
	}
	if err := approval.CheckFreeText("reason", body.Reason, approval.MaxReasonLen); err != nil {
		return ca.RevokeSpec{}, err
	}
	switch {
	case body.Serial != "":
		serial, err := strconv.ParseUint(body.Serial, 10, 64)
		if err != nil || serial == 0 {
			return ca.RevokeSpec{}, fmt.Errorf("%w: serial must be a positive decimal number", errBadInput)
		}
		c, err := s.ledger.GetCertificate(ctx, serial)
		if errors.Is(err, store.ErrNotFound) {
			return ca.RevokeSpec{}, &approval.Error{Kind: approval.ErrNotFound, Code: "unknown_certificate",
				Message: fmt.Sprintf("no certificate has serial %d; find serials with 'jit-ssh audit certs'", serial)}
		}
		if err != nil {
			return ca.RevokeSpec{}, err
		}
		return ca.RevokeSpec{Serial: serial}, s.svc.CanRevoke(ctx, login, c.Requester, c.HostGroup)
	case body.RequestID != "":
		req, err := s.svc.RequestToRevoke(ctx, login, body.RequestID)
		if err != nil {
			return ca.RevokeSpec{}, err
		}
		return ca.RevokeSpec{RequestID: req.ID}, s.svc.CanRevoke(ctx, login, req.Requester, req.HostGroup)
	default:
		if ca.CheckLogin(body.User) != nil {
			return ca.RevokeSpec{}, fmt.Errorf("%w: user %q is not a valid login", errBadInput, body.User)
		}
		return ca.RevokeSpec{User: body.User}, s.svc.CanRevoke(ctx, login, body.User, "")
	}
}

// krl serves the binary OpenSSH KRL built from the ledger: every revoked,
// unexpired serial, under each CA key hosts trust.
func (s *Server) krl(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	bySerial, version, err := s.audit.RevokedSerials(r.Context(), now.Add(-ca.DefaultSkew))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	keys, err := s.caKeys(r.Context())
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: %w", ca.ErrSignerUnavailable, err))
		return
	}
	// Every revoked serial is listed under every CA key hosts trust:
	// serials are unique in the ledger, so this revokes nothing else, and
	// a certificate row whose ca_fingerprint was edited outside the server
	// cannot drop its revocation out of the KRL that way.
	var all []uint64
	for _, serials := range bySerial {
		all = append(all, serials...)
	}
	var sets []ca.RevokedSerials
	if len(all) > 0 {
		for _, k := range keys {
			sets = append(sets, ca.RevokedSerials{CA: k, Serials: all})
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-KRL-Version", strconv.FormatUint(version, 10))
	_, _ = w.Write(ca.MarshalKRL(version, now, "jit-ssh", sets))
}

// caKeys returns the signer's keys and the extra trusted ones.
func (s *Server) caKeys(ctx context.Context) ([]ssh.PublicKey, error) {
	keys, err := s.signer.PublicKeys(ctx)
	if err != nil {
		return nil, err
	}
	return append(keys, s.trusted...), nil
}
