package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
)

// Limits of the service.
const (
	MaxBodyBytes = 64 << 10
	MaxWait      = 60 * time.Second
)

// Store is the whole ledger the service uses: what the certificate use
// cases read and write, and Ping and Stats for GET /healthz and /metrics
// (approval.Ledger). (Refusals are recorded through approval.Service,
// which counts identical ones.)
type Store interface {
	approval.Ledger
}

// Server is the HTTP service. Each handler decodes the call, makes one
// call to a use case (svc for requests and reviews, authority for
// certificates, revocations and the audit log) and encodes the answer.
type Server struct {
	svc       *approval.Service
	authority *approval.Authority
	signer    ca.Signer       // for GET /healthz
	ledger    Store           // for GET /healthz and /metrics
	trusted   []ssh.PublicKey // extra CA keys hosts should keep trusting (rotation)
	log       *slog.Logger
	now       func() time.Time
	mux       *http.ServeMux

	limits                          Limits
	reqLimit, certLimit, writeLimit *limiter // nil: no limit
	metrics                         *metrics
}

// issuePattern is the route of issuance (as registered in NewServer), whose
// rate-limited calls the metrics count as refused certificates.
const issuePattern = "POST /v1/certificates"

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithLogger sets the server's logger.
func WithLogger(l *slog.Logger) ServerOption { return func(s *Server) { s.log = l } }

// WithTrustedKeys adds CA keys that GET /v1/ca publishes besides the
// signer's own (a previous key during rotation).
func WithTrustedKeys(keys []ssh.PublicKey) ServerOption {
	return func(s *Server) { s.trusted = keys }
}

// WithClock sets the clock; nil means time.Now.
func WithClock(now func() time.Time) ServerOption { return func(s *Server) { s.now = now } }

// NewServer returns the service: svc's request use cases, and the
// certificate use cases of an approval.Authority over svc that issues
// through issuer, publishes signer's keys (and WithTrustedKeys') and keeps
// its records in ledger.
func NewServer(svc *approval.Service, issuer *ca.Issuer, signer ca.Signer, ledger Store, opts ...ServerOption) *Server {
	s := &Server{svc: svc, signer: signer, ledger: ledger, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.authority = approval.NewAuthority(svc, approval.WithIssuer(issuer), approval.WithLedger(ledger), approval.WithSigner(signer, s.trusted...))
	s.reqLimit, s.certLimit = newLimiter("requests", s.limits.Requests), newLimiter("certificates", s.limits.Certificates)
	s.writeLimit = newLimiter("ledger writes", s.limits.Writes)
	s.metrics = newMetrics(time.Now())
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", s.health)
	m.HandleFunc("GET /metrics", s.serveMetrics)
	m.HandleFunc("GET /v1/ca", s.getCA)
	m.HandleFunc("GET /v1/host-groups/{name}", s.getHostGroup)
	// Every call that writes to the ledger, refusals included, spends the
	// caller's write budget (writeLimit) besides its own kind's.
	m.HandleFunc("POST /v1/requests", s.authed(s.limited(s.createRequest, s.reqLimit, s.writeLimit)))
	m.HandleFunc("GET /v1/requests", s.authed(s.listRequests))
	m.HandleFunc("GET /v1/requests/{id}", s.authed(s.getRequest))
	m.HandleFunc("PATCH /v1/requests/{id}", s.authed(s.limited(s.editRequest, s.writeLimit)))
	m.HandleFunc("POST /v1/requests/{id}/cancel", s.authed(s.limited(s.cancelRequest, s.writeLimit)))
	m.HandleFunc("POST /v1/requests/{id}/reviews", s.authed(s.limited(s.review, s.writeLimit)))
	m.HandleFunc("POST /v1/certificates", s.authed(s.limited(s.issue, s.certLimit, s.writeLimit)))
	m.HandleFunc("GET /v1/certificates", s.authed(s.listCertificates))
	m.HandleFunc("GET /v1/certificates/{serial}", s.authed(s.getCertificate))
	m.HandleFunc("GET /v1/events", s.authed(s.listEvents))
	m.HandleFunc("GET /v1/audit/verify", s.authed(s.verify))
	m.HandleFunc("GET /v1/audit/report", s.authed(s.report))
	m.HandleFunc("POST /v1/revocations", s.authed(s.limited(s.revoke, s.writeLimit)))
	m.HandleFunc("GET /v1/krl", s.krl)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	s.mux = m
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.mux.ServeHTTP(w, r)
		return
	}
	// Debug: one record per request, with neither headers nor the query
	// (the bearer token and any secret stay out of the log).
	start := s.now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(sw, r)
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "http request", slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.Int("status", sw.status), slog.Duration("duration", s.now().Sub(start)))
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// HTTPServer wraps h with the timeouts and header limits jit-ssh runs with
// (DefaultTimeouts, MaxHeaderBytes; opts change them). The write timeout
// leaves room for the longest long-poll; long-polls and streamed listings
// also move their own write deadline (see extendWrite).
func HTTPServer(addr string, h http.Handler, opts ...HTTPOption) *http.Server {
	t := DefaultTimeouts()
	hs := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
	for _, o := range opts {
		o(hs)
	}
	return hs
}

type handler func(w http.ResponseWriter, r *http.Request, login string)

// authed resolves the caller's credential to a login before calling h: a
// person's bearer token, or a CI job's ID token under
// approval.WorkloadScheme, whose verified claims the service reads from
// the request's context.
func (s *Server) authed(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var login string
		var err error
		if idToken, ok := strings.CutPrefix(r.Header.Get("Authorization"), approval.WorkloadScheme+" "); ok {
			var ctx context.Context
			ctx, login, err = s.svc.AuthenticateWorkload(r.Context(), strings.TrimSpace(idToken))
			r = r.WithContext(ctx)
		} else {
			token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			login, err = s.svc.Authenticate(r.Context(), strings.TrimSpace(token))
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jit-ssh"`)
			s.fail(w, r, err)
			return
		}
		h(w, r, login)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "encoding the response failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	body, _ := json.Marshal(b)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// fail maps err to a status and code and writes it. Internal errors are
// logged and reported without detail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := classify(err)
	if status >= 500 {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", status), slog.String("code", code), slog.String("error", err.Error()))
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeError(w, status, code, msg)
}

// classify maps err to its status, code and message: the errors of
// decoding here, the rest as approval.Failure describes them.
func classify(err error) (int, string, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, errBadInput):
		return http.StatusBadRequest, approval.CodeInvalidInput, strings.TrimPrefix(err.Error(), errBadInput.Error()+": ")
	case errors.Is(err, errContentType):
		return http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json"
	}
	f := approval.Failure(err)
	return kindStatus(f.Kind), f.Code, f.Message
}

func kindStatus(kind error) int {
	switch {
	case errors.Is(kind, approval.ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(kind, approval.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(kind, approval.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(kind, approval.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(kind, approval.ErrConflict):
		return http.StatusConflict
	case errors.Is(kind, approval.ErrUnavailable):
		return http.StatusServiceUnavailable
	default: // approval.ErrInternal
		return http.StatusInternalServerError
	}
}

var (
	errBadInput    = errors.New("invalid input")
	errContentType = errors.New("unsupported content type")
)

// decode reads a JSON body of at most MaxBodyBytes into v, refusing unknown
// fields, trailing data and other content types.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errContentType
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty body", errBadInput)
		}
		return fmt.Errorf("%w: %v", errBadInput, err) //nolint:errorlint // the decoder's message is what the caller needs
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON object", errBadInput)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the JSON object", errBadInput)
	}
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if len(s) > 32 {
		return 0, fmt.Errorf("%w: duration too long", errBadInput)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: duration %q must be positive, like 30m or 1h", errBadInput, s)
	}
	return d, nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	h := Health{Status: "ok", Checks: map[string]string{"ledger": "ok", "signer": "ok"}}
	status := http.StatusOK
	if err := s.ledger.Ping(ctx); err != nil {
		h.Status, h.Checks["ledger"], status = "unavailable", "unavailable", http.StatusServiceUnavailable
	}
	if _, err := s.signer.PublicKeys(ctx); err != nil {
		h.Status, h.Checks["signer"], status = "unavailable", "unavailable", http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

func (s *Server) getCA(w http.ResponseWriter, r *http.Request) {
	keys, err := s.authority.CAKeys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := CAResponse{Keys: []CAKey{}}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, CAKey{PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), Fingerprint: ca.Fingerprint(k)})
	}
	writeJSON(w, http.StatusOK, resp)
}

// getHostGroup publishes a group's name and principals, which a host
// operator needs for 'jit-ssh host config'. Teams and limits stay private.
func (s *Server) getHostGroup(w http.ResponseWriter, r *http.Request) {
	p, err := s.authority.HostGroup(r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, HostGroup{Name: p.Group, Principals: orEmpty(p.Principals)})
}

// requestView adds what a client needs to show progress.
func (s *Server) requestView(r *ca.Request) Request {
	v := Request{
		ID: r.ID, HostGroup: r.HostGroup, Requester: r.Requester, State: r.State, Reason: r.Reason,
		Duration: r.Duration.String(), DurationSeconds: int64(r.Duration / time.Second),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ApprovedAt: timePtr(r.ApprovedAt), GrantEndsAt: timePtr(r.GrantEnds()),
		Version: r.Version, Reviews: r.Reviews, ApproverTeams: []string{},
		BreakGlass: r.BreakGlass, FollowUp: r.FollowUp, ReviewDueAt: timePtr(r.ReviewDueAt), FollowedUpAt: timePtr(r.FollowedUpAt),
	}
	if v.Reviews == nil {
		v.Reviews = []ca.Review{}
	}
	if p := s.svc.Policy(r.HostGroup); p != nil {
		v.ApprovalsRequired, v.ApproverTeams = p.ApprovalsRequired, orEmpty(p.Approvers)
	}
	t := approval.TallyReviews(r)
	v.Approvals, v.ChangesRequestedBy = orEmpty(t.Approvers), orEmpty(t.Blockers)
	return v
}

func (s *Server) createRequest(w http.ResponseWriter, r *http.Request, login string) {
	var body CreateRequest
	if err := decode(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := parseDuration(body.Duration)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	create := s.svc.Create
	if body.BreakGlass {
		create = s.svc.BreakGlass
	}
	req, err := create(r.Context(), login, body.HostGroup, d, body.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.requestView(req))
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s must be true or false", errBadInput, name)
	}
	return b, nil
}

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request, login string) {
	mine, err1 := boolParam(r, "mine")
	reviewable, err2 := boolParam(r, "reviewable")
	if err := errors.Join(err1, err2); err != nil {
		s.fail(w, r, err)
		return
	}
	reqs, err := s.svc.List(r.Context(), login, approval.ListFilter{Mine: mine, Reviewable: reviewable, State: r.URL.Query().Get("state")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]Request, 0, len(reqs))
	for _, q := range reqs {
		out = append(out, s.requestView(q))
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request, login string) {
	id, q := r.PathValue("id"), r.URL.Query()
	var req *ca.Request
	var err error
	if ws := q.Get("wait"); ws == "" {
		req, err = s.svc.Get(r.Context(), login, id)
	} else {
		var wait time.Duration
		var version *int64
		if wait, err = parseDuration(ws); err == nil {
			version, err = versionParam(q.Get("version"))
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		extendWrite(w, min(wait, MaxWait)+longPollSlack)
		req, err = s.svc.WaitForChange(r.Context(), login, id, version, min(wait, MaxWait))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.requestView(req))
}

// versionParam reads the version a long poll waits to change from; nil
// when the caller names none.
func versionParam(v string) (*int64, error) {
	if v == "" {
		return nil, nil
	}
	version, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: version must be an integer", errBadInput)
	}
	return &version, nil
}

func (s *Server) editRequest(w http.ResponseWriter, r *http.Request, login string) {
	var body EditRequest
	if err := decode(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := parseDuration(body.Duration)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := s.svc.Edit(r.Context(), login, r.PathValue("id"), d, body.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.requestView(req))
}

func (s *Server) cancelRequest(w http.ResponseWriter, r *http.Request, login string) {
	req, err := s.svc.Cancel(r.Context(), login, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.requestView(req))
}

func (s *Server) review(w http.ResponseWriter, r *http.Request, login string) {
	var body ReviewRequest
	if err := decode(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := s.svc.Review(r.Context(), login, r.PathValue("id"), body.Event, body.Body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.requestView(req))
}

func (s *Server) issue(w http.ResponseWriter, r *http.Request, login string) {
	var body IssueRequest
	if err := decode(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	start := time.Now()
	rec, err := s.authority.IssueCertificate(r.Context(), login, body.RequestID, body.PublicKey)
	if err != nil {
		_, code, _ := classify(err)
		s.metrics.certificateRefused(code)
		s.fail(w, r, err)
		return
	}
	s.metrics.certificateIssued(rec.HostGroup, time.Since(start))
	writeJSON(w, http.StatusCreated, certificateView(rec))
}

// parseTimeParam reads the time parameter name by approval.ParseTime's
// rule; its error is errBadInput, so the errors of several parameters are
// answered together.
func parseTimeParam(q url.Values, name string) (time.Time, error) {
	t, err := approval.ParseTime(name, q.Get(name))
	if err != nil {
		return t, fmt.Errorf("%w: %w", errBadInput, err)
	}
	return t, nil
}

// certFilter reads the audit filters of GET /v1/certificates.
func certFilter(r *http.Request) (ca.CertFilter, error) {
	q := r.URL.Query()
	f := ca.CertFilter{User: q.Get("user"), Group: q.Get("group")}
	if f.User != "" && ca.CheckRequester(f.User) != nil {
		return f, fmt.Errorf("%w: user %q is not a valid login or workload", errBadInput, f.User)
	}
	if f.Group != "" && ca.CheckGroup(f.Group) != nil {
		return f, fmt.Errorf("%w: group %q is not a valid host group", errBadInput, f.Group)
	}
	var errs [3]error
	f.Since, errs[0] = parseTimeParam(q, "since")
	f.Until, errs[1] = parseTimeParam(q, "until")
	f.ValidAt, errs[2] = parseTimeParam(q, "valid_at")
	if err := errors.Join(errs[:]...); err != nil {
		return f, err
	}
	if v := q.Get("serial"); v != "" {
		serial, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return f, fmt.Errorf("%w: serial must be a decimal number", errBadInput)
		}
		f.Serial = serial
	}
	f.KeyID = q.Get("key_id")
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return f, fmt.Errorf("%w: limit must be a non-negative integer", errBadInput)
		}
		f.Limit = n
	}
	return f, nil
}

// listCertificates streams the matching certificates login may see as
// NDJSON.
func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request, login string) {
	f, err := certFilter(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.stream(w, r, func(emit func(any) error) error {
		return s.authority.ListCertificates(r.Context(), login, f, func(c *ca.Certificate) error { return emit(certificateView(c)) })
	})
}

func (s *Server) getCertificate(w http.ResponseWriter, r *http.Request, login string) {
	c, err := s.authority.GetCertificate(r.Context(), login, r.PathValue("serial"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, certificateView(c))
}
