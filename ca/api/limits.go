package api

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a token bucket: PerMinute tokens a minute, at most Burst at once.
// A PerMinute of zero (or less) means no limit.
type Rate struct {
	PerMinute float64
	Burst     int
}

// Limits are the per-identity rate limits of the service. Each
// authenticated login has its own bucket per kind, so one busy (or
// compromised) identity cannot starve the others or flood the ledger.
type Limits struct {
	Requests     Rate // POST /v1/requests
	Certificates Rate // POST /v1/certificates
	// Writes is one budget shared by every call that writes to the
	// ledger, refused ones included (a refusal is recorded too): creating,
	// editing and cancelling requests, reviews, certificates and
	// revocations. A call must fit both its own kind's bucket and this one.
	Writes Rate
}

// DefaultLimits are the limits `jit-ssh serve --config` runs with unless
// the config's limits block says otherwise: far above what a person logging
// in needs, far below what a script gone wrong would send.
func DefaultLimits() Limits {
	return Limits{
		Requests:     Rate{PerMinute: 10, Burst: 5},
		Certificates: Rate{PerMinute: 30, Burst: 10},
		Writes:       Rate{PerMinute: 120, Burst: 60},
	}
}

// WithLimits sets the per-identity rate limits. Without it, or with the
// zero Limits, NewServer applies none.
func WithLimits(l Limits) ServerOption { return func(s *Server) { s.limits = l } }

// maxBuckets bounds the buckets kept; beyond it, full (idle) buckets are
// dropped, which loses nothing since a full bucket is a fresh one.
const maxBuckets = 10000

// limiter keeps one token bucket per login for one kind of call.
type limiter struct {
	what    string // "requests", "certificates": for the error message
	rate    Rate
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiter(what string, r Rate) *limiter {
	if r.PerMinute <= 0 {
		return nil
	}
	if r.Burst < 1 {
		r.Burst = 1
	}
	return &limiter{what: what, rate: r, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from login's bucket at now. When none is left it
// returns false and how long until one is.
func (l *limiter) allow(login string, now time.Time) (time.Duration, bool) {
	res := l.reserve(login, now)
	if !res.OK() {
		return time.Minute, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// reserve takes a token from login's bucket at now, or reserves the next
// one (the caller cancels a reservation it does not use).
func (l *limiter) reserve(login string, now time.Time) *rate.Reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[login]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			for k, v := range l.buckets {
				if v.TokensAt(now) >= float64(l.rate.Burst) {
					delete(l.buckets, k)
				}
			}
		}
		b = rate.NewLimiter(rate.Limit(l.rate.PerMinute/60), l.rate.Burst)
		l.buckets[login] = b
	}
	return b.ReserveN(now, 1)
}

// allowAll takes a token from login's bucket in each of ls (nil ones are
// no limit), or from none of them: when one has none left, the others get
// theirs back, and it returns false, the limiter that refused (the one
// with the longest wait) and how long until all have a token.
func allowAll(ls []*limiter, login string, now time.Time) (*limiter, time.Duration, bool) {
	var taken []*rate.Reservation
	var refusedBy *limiter
	var wait time.Duration
	for _, l := range ls {
		if l == nil {
			continue
		}
		res := l.reserve(login, now)
		d := time.Minute
		if res.OK() {
			taken = append(taken, res)
			d = res.DelayFrom(now)
		}
		if d > 0 && (refusedBy == nil || d > wait) {
			refusedBy, wait = l, d
		}
	}
	if refusedBy == nil {
		return nil, 0, true
	}
	for _, res := range taken {
		res.CancelAt(now)
	}
	return refusedBy, wait, false
}

// limited refuses a call with 429 and Retry-After when login has used up
// its bucket in any of ls; it runs after authentication, so the key is a
// real identity. A refused call is logged but not written to the ledger: a
// flood must not become a flood of ledger writes.
func (s *Server) limited(h handler, ls ...*limiter) handler {
	if !slices.ContainsFunc(ls, func(l *limiter) bool { return l != nil }) {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, login string) {
		l, wait, ok := allowAll(ls, login, s.now())
		if ok {
			h(w, r, login)
			return
		}
		secs := int(math.Ceil(wait.Seconds()))
		secs = max(secs, 1)
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "rate limited", slog.String("login", login),
			slog.String("path", r.URL.Path), slog.String("limit", l.what), slog.Int("retry_after_seconds", secs))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		if r.Pattern == issuePattern {
			s.metrics.certificateRefused("rate_limited")
		}
		writeError(w, http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("too many %s for %s (at most %g a minute); try again in %d s", l.what, login, l.rate.PerMinute, secs))
	}
}

// Timeouts are the http.Server timeouts jit-ssh runs with.
type Timeouts struct {
	ReadHeader time.Duration // to read a request's headers: cuts off slowloris clients
	Read       time.Duration // to read a whole request, body included
	Write      time.Duration // to write a response; long-polls and streamed listings extend it per route
	Idle       time.Duration // a keep-alive connection's wait for the next request
}

// DefaultTimeouts returns the timeouts of HTTPServer. Write leaves room for
// the longest long-poll even where a proxy or client does not let the
// per-route extension work.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: MaxWait + 30*time.Second, Idle: 120 * time.Second}
}

// MaxHeaderBytes caps a request's headers; larger ones get 431.
const MaxHeaderBytes = 16 << 10

// HTTPOption changes the http.Server that HTTPServer returns.
type HTTPOption func(*http.Server)

// WithTimeouts replaces the server timeouts; a zero field keeps the default.
func WithTimeouts(t Timeouts) HTTPOption {
	return func(hs *http.Server) {
		if t.ReadHeader > 0 {
			hs.ReadHeaderTimeout = t.ReadHeader
		}
		if t.Read > 0 {
			hs.ReadTimeout = t.Read
		}
		if t.Write > 0 {
			hs.WriteTimeout = t.Write
		}
		if t.Idle > 0 {
			hs.IdleTimeout = t.Idle
		}
	}
}

// streamWriteSlack is how long a streamed listing may take to write each
// line, and longPollSlack how long a long-poll may take to write its answer
// after the wait: the per-route write deadlines that let long answers
// outlive the server-wide write timeout without letting a stalled client
// hold a connection for ever.
const (
	streamWriteSlack = 30 * time.Second
	longPollSlack    = 30 * time.Second
)

// extendWrite moves the connection's write deadline to d from now. Where
// the writer cannot (a test recorder) the server-wide timeout stays.
func extendWrite(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}
