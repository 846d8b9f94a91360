// Package ghstub is an in-process stand-in for GitHub in tests: an HTTP
// server that speaks the GitHub REST shapes jit-ssh uses, reached the way a
// GitHub Enterprise Server is (API under /api/v3/), plus the OAuth device
// flow endpoints. Tests add users and teams, switch the API to fail (500,
// hang, rate limits) and count requests.
//
// Endpoints:
//
//	GET  /api/v3/user                                           the token's user, 401 for unknown tokens
//	GET  /api/v3/orgs/{org}/teams/{team_slug}/memberships/{user} 200 {url, role, state} or 404
//	POST /login/device/code                                     device and user codes
//	POST /login/oauth/access_token                              the device grant
//
// Every API answer carries GitHub's rate-limit headers (X-RateLimit-Limit,
// -Remaining, -Reset, -Used, -Resource). Fail modes apply to the API only,
// not to the device flow.
package ghstub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mode is how the API answers.
type Mode string

// Fail modes.
const (
	// FailNone answers normally.
	FailNone Mode = "none"
	// Fail500 answers 500 Internal Server Error.
	Fail500 Mode = "500"
	// FailTimeout hangs until the client gives up, the stub closes or
	// HangLimit passes.
	FailTimeout Mode = "timeout"
	// FailRateLimit answers 403 with X-RateLimit-Remaining: 0, GitHub's
	// primary rate limit.
	FailRateLimit Mode = "ratelimit"
	// FailRateLimit429 answers the primary rate limit with 429, which
	// GitHub also uses.
	FailRateLimit429 Mode = "ratelimit429"
	// FailSecondaryRateLimit answers 403 with Retry-After, GitHub's
	// secondary rate limit.
	FailSecondaryRateLimit Mode = "secondary"
)

// Endpoints, for Count.
const (
	EndpointUser        = "user"
	EndpointMembership  = "membership"
	EndpointDeviceCode  = "device_code"
	EndpointAccessToken = "access_token"
)

// Rate-limit figures the stub reports.
const (
	rateLimit = 5000
	docsBase  = "https://docs.github.com/rest"
)

// Server is a running stub.
type Server struct {
	// URL is the base URL, like a GitHub Enterprise Server's: give it to
	// go-github's WithEnterpriseURLs (or jit-ssh's api_url) and as the web
	// URL of the device flow.
	URL string

	srv     *httptest.Server
	closing chan struct{}

	mu          sync.Mutex
	users       map[string]*user             // by token
	teams       map[string]map[string]string // "org/team" -> login (lower case) -> state
	teamIDs     map[string]int
	mode        Mode
	resetAfter  time.Duration
	hangLimit   time.Duration
	counts      map[string]int
	used        map[string]int // requests per token (or "" for anonymous)
	clientID    string
	interval    int
	expiresIn   int
	devices     map[string]*device // by device code
	nextUserID  int64
	lastRequest map[string]http.Header
}

type user struct {
	login string
	id    int64
}

type device struct {
	userCode string
	expires  time.Time
	lastPoll time.Time
	login    string // set when approved
	token    string
	denied   bool
	used     bool
}

// New starts a stub and stops it at the end of the test. Its OAuth app's
// client ID is "Iv1.jitsshtest" (see SetClientID).
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		closing:     make(chan struct{}),
		users:       map[string]*user{},
		teams:       map[string]map[string]string{},
		teamIDs:     map[string]int{},
		mode:        FailNone,
		resetAfter:  time.Hour,
		hangLimit:   30 * time.Second,
		counts:      map[string]int{},
		used:        map[string]int{},
		clientID:    "Iv1.jitsshtest",
		interval:    1,
		expiresIn:   900,
		devices:     map[string]*device{},
		nextUserID:  1000,
		lastRequest: map[string]http.Header{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v3/user", s.api(EndpointUser, s.getUser))
	mux.HandleFunc("GET /api/v3/orgs/{org}/teams/{team}/memberships/{username}", s.api(EndpointMembership, s.getMembership))
	mux.HandleFunc("POST /login/device/code", s.deviceCode)
	mux.HandleFunc("POST /login/oauth/access_token", s.accessToken)
	mux.HandleFunc("/api/v3/", s.api("other", func(w http.ResponseWriter, _ *http.Request, _ string) {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": docsBase})
	}))
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/"
	t.Cleanup(s.Close)
	return s
}

// Close stops the stub, ending hanging answers first.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		return
	default:
		close(s.closing)
	}
	s.mu.Unlock()
	s.srv.Close()
}

// APIURL is the REST API's base URL (URL + "api/v3/").
func (s *Server) APIURL() string { return s.URL + "api/v3/" }

// AddUser makes token identify login.
func (s *Server) AddUser(login, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addUserLocked(login, token)
}

func (s *Server) addUserLocked(login, token string) {
	for _, u := range s.users {
		if strings.EqualFold(u.login, login) {
			s.users[token] = u
			return
		}
	}
	s.nextUserID++
	s.users[token] = &user{login: login, id: s.nextUserID}
}

// RemoveToken makes token unknown (revoked).
func (s *Server) RemoveToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, token)
}

// SetTeam makes logins the active members of org/team, replacing earlier
// members.
func (s *Server) SetTeam(org, team string, logins ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]string{}
	for _, l := range logins {
		m[strings.ToLower(l)] = "active"
	}
	key := strings.ToLower(org + "/" + team)
	s.teams[key] = m
	if _, ok := s.teamIDs[key]; !ok {
		s.teamIDs[key] = len(s.teamIDs) + 1
	}
}

// SetPending records login as invited to org/team but not yet a member
// (membership state "pending").
func (s *Server) SetPending(org, team, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(org + "/" + team)
	if s.teams[key] == nil {
		s.teams[key] = map[string]string{}
		s.teamIDs[key] = len(s.teamIDs) + 1
	}
	s.teams[key][strings.ToLower(login)] = "pending"
}

// RemoveMember removes login from org/team.
func (s *Server) RemoveMember(org, team, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.teams[strings.ToLower(org+"/"+team)], strings.ToLower(login))
}

// Fail switches how the API answers from now on.
func (s *Server) Fail(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// SetRateLimitReset sets how long after now a rate-limit answer says the
// limit resets (default an hour). Zero or less makes it reset at once, so a
// client may retry immediately.
func (s *Server) SetRateLimitReset(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetAfter = d
}

// SetHangLimit bounds how long FailTimeout hangs (default 30s).
func (s *Server) SetHangLimit(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangLimit = d
}

// Count returns how many requests reached an endpoint (Endpoint*),
// including failed ones.
func (s *Server) Count(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// ResetCounts sets every count to zero.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int{}
}

// LastHeader returns the headers of the last request to an endpoint.
func (s *Server) LastHeader(endpoint string) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRequest[endpoint].Clone()
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, p := range []string{"Bearer ", "bearer ", "token ", "Token "} {
		if t, ok := strings.CutPrefix(h, p); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}

// api wraps an API handler with counting, rate-limit headers and the fail
// modes.
func (s *Server) api(endpoint string, h func(w http.ResponseWriter, r *http.Request, token string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		s.mu.Lock()
		s.counts[endpoint]++
		s.lastRequest[endpoint] = r.Header.Clone()
		mode, resetAfter, hang := s.mode, s.resetAfter, s.hangLimit
		key := ""
		if _, ok := s.users[token]; ok {
			key = token
		}
		s.used[key]++
		used := s.used[key]
		s.mu.Unlock()

		limit := rateLimit
		if key == "" {
			limit = 60 // GitHub's limit for unauthenticated calls
		}
		reset := time.Now().Truncate(time.Hour).Add(time.Hour)
		remaining := max(limit-used, 0)
		if mode == FailRateLimit || mode == FailRateLimit429 {
			reset, remaining, used = time.Now().Add(resetAfter), 0, limit
		}
		hd := w.Header()
		hd.Set("X-RateLimit-Limit", strconv.Itoa(limit))
		hd.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
		hd.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		hd.Set("X-RateLimit-Used", strconv.Itoa(min(used, limit)))
		hd.Set("X-RateLimit-Resource", "core")
		hd.Set("X-GitHub-Media-Type", "github.v3; format=json")
		hd.Set("X-GitHub-Request-Id", randomHex(8))

		switch mode {
		case Fail500:
			writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Server Error"})
			return
		case FailTimeout:
			select {
			case <-r.Context().Done():
			case <-s.closing:
			case <-time.After(hang):
			}
			writeJSON(w, http.StatusGatewayTimeout, map[string]string{"message": "timeout"})
			return
		case FailRateLimit, FailRateLimit429:
			status := http.StatusForbidden
			if mode == FailRateLimit429 {
				status = http.StatusTooManyRequests
			}
			writeJSON(w, status, map[string]string{
				"message":           "API rate limit exceeded for user ID 1000. If you reach out to GitHub Support for help, please include the request ID.",
				"documentation_url": docsBase + "/overview/rate-limits-for-the-rest-api#about-primary-rate-limits",
			})
			return
		case FailSecondaryRateLimit:
			hd.Set("Retry-After", "60")
			writeJSON(w, http.StatusForbidden, map[string]string{
				"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
				"documentation_url": docsBase + "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
			})
			return
		}
		if key == "" {
			msg := "Bad credentials"
			if token == "" {
				msg = "Requires authentication"
			}
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": msg, "documentation_url": docsBase})
			return
		}
		h(w, r, token)
	}
}

func (s *Server) getUser(w http.ResponseWriter, _ *http.Request, token string) {
	s.mu.Lock()
	u := *s.users[token]
	s.mu.Unlock()
	api := s.APIURL() + "users/" + u.login
	writeJSON(w, http.StatusOK, map[string]any{
		"login":                     u.login,
		"id":                        u.id,
		"node_id":                   "U_kgDO" + strconv.FormatInt(u.id, 10),
		"avatar_url":                s.URL + "avatars/u/" + strconv.FormatInt(u.id, 10),
		"gravatar_id":               "",
		"url":                       api,
		"html_url":                  s.URL + u.login,
		"followers_url":             api + "/followers",
		"organizations_url":         api + "/orgs",
		"repos_url":                 api + "/repos",
		"type":                      "User",
		"site_admin":                false,
		"name":                      nil,
		"company":                   nil,
		"public_repos":              0,
		"followers":                 0,
		"following":                 0,
		"created_at":                "2020-01-01T00:00:00Z",
		"updated_at":                "2020-01-01T00:00:00Z",
		"two_factor_authentication": true,
	})
}

func (s *Server) getMembership(w http.ResponseWriter, r *http.Request, _ string) {
	org, team, login := r.PathValue("org"), r.PathValue("team"), r.PathValue("username")
	key := strings.ToLower(org + "/" + team)
	s.mu.Lock()
	state, ok := s.teams[key][strings.ToLower(login)]
	id := s.teamIDs[key]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{
			"message":           "Not Found",
			"documentation_url": docsBase + "/teams/members#get-team-membership-for-a-user",
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"url":   fmt.Sprintf("%steams/%d/memberships/%s", s.APIURL(), id, url.PathEscape(login)),
		"role":  "member",
		"state": state,
	})
}

// SetClientID sets the OAuth app client ID the device flow accepts.
func (s *Server) SetClientID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clientID = id
}

// SetDeviceTiming sets the polling interval (seconds; GitHub says 5, the
// stub 1 so tests are quick) and the lifetime of device codes.
func (s *Server) SetDeviceTiming(intervalSeconds int, expires time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interval, s.expiresIn = intervalSeconds, int(expires.Seconds())
}

// UserCodes returns the user codes of device flows nobody has approved or
// denied yet.
func (s *Server) UserCodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.devices {
		if d.login == "" && !d.denied {
			out = append(out, d.userCode)
		}
	}
	return out
}

// ApproveDevice plays the user who enters userCode in the browser as login
// and authorises the app: the polling client then gets a new token for
// login, which ApproveDevice returns.
func (s *Server) ApproveDevice(userCode, login string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deviceByUserCode(userCode)
	if d == nil {
		return "", fmt.Errorf("ghstub: no device flow with user code %q", userCode)
	}
	d.login = login
	d.token = "gho_" + randomHex(18)
	s.addUserLocked(login, d.token)
	return d.token, nil
}

// DenyDevice plays the user who cancels the authorisation of userCode.
func (s *Server) DenyDevice(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deviceByUserCode(userCode)
	if d == nil {
		return fmt.Errorf("ghstub: no device flow with user code %q", userCode)
	}
	d.denied = true
	return nil
}

func (s *Server) deviceByUserCode(code string) *device {
	for _, d := range s.devices {
		if d.userCode == strings.ToUpper(code) {
			return d
		}
	}
	return nil
}

// oauthAnswer writes a device-flow answer as GitHub does: JSON when the
// client accepts it, form encoding otherwise. Errors are 200s with an
// "error" field, as GitHub sends them.
func oauthAnswer(w http.ResponseWriter, r *http.Request, status int, v map[string]any) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, status, v)
		return
	}
	q := url.Values{}
	for k, val := range v {
		q.Set(k, fmt.Sprint(val))
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(q.Encode()))
}

const deviceErrorsDoc = "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow"

func oauthError(code, description string) map[string]any {
	return map[string]any{"error": code, "error_description": description, "error_uri": deviceErrorsDoc}
}

func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[EndpointDeviceCode]++
	s.lastRequest[EndpointDeviceCode] = r.Header.Clone()
	if r.PostForm.Get("client_id") != s.clientID {
		oauthAnswer(w, r, http.StatusUnauthorized, oauthError("incorrect_client_credentials", "The client_id is not valid."))
		return
	}
	dc := randomHex(20)
	uc := userCode()
	s.devices[dc] = &device{userCode: uc, expires: time.Now().Add(time.Duration(s.expiresIn) * time.Second)}
	oauthAnswer(w, r, http.StatusOK, map[string]any{
		"device_code":      dc,
		"user_code":        uc,
		"verification_uri": s.URL + "login/device",
		"expires_in":       s.expiresIn,
		"interval":         s.interval,
	})
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[EndpointAccessToken]++
	s.lastRequest[EndpointAccessToken] = r.Header.Clone()
	f := r.PostForm
	if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" {
		oauthAnswer(w, r, http.StatusOK, oauthError("unsupported_grant_type", "The grant type must be urn:ietf:params:oauth:grant-type:device_code."))
		return
	}
	if f.Get("client_id") != s.clientID {
		oauthAnswer(w, r, http.StatusOK, oauthError("incorrect_client_credentials", "The client_id is not valid."))
		return
	}
	d := s.devices[f.Get("device_code")]
	now := time.Now()
	switch {
	case d == nil || d.used:
		oauthAnswer(w, r, http.StatusOK, oauthError("incorrect_device_code", "The device_code provided is not valid."))
	case now.After(d.expires):
		oauthAnswer(w, r, http.StatusOK, oauthError("expired_token", "The device_code has expired."))
	case d.denied:
		oauthAnswer(w, r, http.StatusOK, oauthError("access_denied", "The authorization request was denied."))
	case d.login != "":
		d.used = true
		oauthAnswer(w, r, http.StatusOK, map[string]any{"access_token": d.token, "token_type": "bearer", "scope": ""})
	case !d.lastPoll.IsZero() && now.Sub(d.lastPoll) < time.Duration(s.interval)*time.Second/2:
		d.lastPoll = now
		e := oauthError("slow_down", "Too many requests have been made in the same timeframe.")
		e["interval"] = s.interval + 5
		oauthAnswer(w, r, http.StatusOK, e)
	default:
		d.lastPoll = now
		oauthAnswer(w, r, http.StatusOK, oauthError("authorization_pending", "The authorization request is still pending."))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// userCode returns a code like WDJB-MJHT (GitHub's alphabet has no vowels
// or look-alikes).
func userCode() string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	out := make([]byte, 0, 9)
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}
