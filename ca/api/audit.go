package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
)

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

// NewVerifyResult turns the outcome of a ledger's Verify (store.Verifier,
// approval.Authority.Verify) into the API's form. Errors other than an
// *approval.ChainError are returned as they are.
func NewVerifyResult(res ca.VerifyResult, err error) (VerifyResult, error) {
	out := VerifyResult{OK: err == nil, Rows: res.Rows, Head: res.Head, Checkpoints: res.Checkpoints, SidecarCheckpoints: res.SidecarCheckpoints,
		LastCheckpointRow: res.LastCheckpointRow, LastCheckpointAt: timePtr(res.LastCheckpointAt), UnanchoredRows: res.Unanchored,
		CheckpointKeys: res.CheckpointKeys, RowsChecked: res.RowsChecked, Requests: res.Requests, Reviews: res.Reviews, Certificates: res.Certificates}
	var ce *approval.ChainError
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
	// BreakGlass counts the break-glass grants among the requests;
	// MedianToFollowUpSeconds is the median time from one's start to its
	// follow-up review; OverdueFollowUps are those past due now (of any
	// age).
	BreakGlass              int               `json:"break_glass"`
	MedianToFollowUpSeconds float64           `json:"median_to_follow_up_seconds"`
	OverdueFollowUps        []OverdueFollowUp `json:"overdue_follow_ups"`
}

// OverdueFollowUp is a break-glass grant whose follow-up review is late.
type OverdueFollowUp struct {
	RequestID string    `json:"request_id"`
	Requester string    `json:"requester"`
	HostGroup string    `json:"host_group"`
	DueAt     time.Time `json:"due_at"`
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
	s.stream(w, r, func(emit func(any) error) error {
		return s.authority.ListEvents(r.Context(), login, f, func(ev *ca.Event) error {
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
	res, err := NewVerifyResult(s.authority.Verify(r.Context(), login))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request, login string) {
	rep, err := s.authority.Report(r.Context(), login, r.URL.Query().Get("since"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := Report{
		Since: timePtr(rep.Since), Requests: rep.Requests, Approved: rep.Approved, Denied: rep.Denied, Expired: rep.Expired,
		Cancelled: rep.Cancelled, Pending: rep.Pending, ApprovalRate: rep.ApprovalRate,
		MedianToApprovalSeconds: rep.MedianToApproval.Seconds(), P95ToApprovalSeconds: rep.P95ToApproval.Seconds(),
		MedianGrantLengthSeconds: rep.MedianGrantLength.Seconds(), CertsIssued: rep.CertsIssued, OpenGrantsNow: rep.OpenGrantsNow,
		BreakGlass: rep.BreakGlass, MedianToFollowUpSeconds: rep.MedianToFollowUp.Seconds(), OverdueFollowUps: []OverdueFollowUp{},
	}
	for _, o := range rep.OverdueFollowUps {
		out.OverdueFollowUps = append(out.OverdueFollowUps, OverdueFollowUp{RequestID: o.RequestID, Requester: o.Requester, HostGroup: o.HostGroup, DueAt: o.DueAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, login string) {
	var body RevokeRequest
	if err := decode(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.authority.Revoke(r.Context(), login, approval.RevokeOrder{Serial: body.Serial, RequestID: body.RequestID, User: body.User, Reason: body.Reason})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := RevokeResult{Revoked: []string{}, EndedGrants: orEmpty(res.EndedGrants), CancelledRequests: res.Cancelled}
	for _, serial := range res.Serials {
		out.Revoked = append(out.Revoked, strconv.FormatUint(serial, 10))
	}
	writeJSON(w, http.StatusOK, out)
}

// krl serves the binary OpenSSH KRL of the ledger's revocations
// (approval.Authority.KRL).
func (s *Server) krl(w http.ResponseWriter, r *http.Request) {
	krl, version, err := s.authority.KRL(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-KRL-Version", strconv.FormatUint(version, 10))
	_, _ = w.Write(krl)
}
