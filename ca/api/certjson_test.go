package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jit-ssh/jit-ssh/ca"
)

// encodingJSON is what stream wrote for every row before appendJSON: a
// json.Encoder without HTML escaping, newline dropped.
func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// trickyStrings are strings whose JSON encodings differ between careless
// encoders: every control character, quotes and backslashes, HTML
// characters (not escaped here), DEL, multi-byte UTF-8, the JavaScript
// line separators, and invalid UTF-8 of several kinds.
func trickyStrings() []string {
	s := []string{
		"", "plain", `quote " and backslash \ and slash /`, "<script>&amp;</script>", "\x7f", "é", "日本語", "🔑 key",
		"\u2028\u2029", "a\u2028b\u2029c", "\u2027\u202a", "\xff", "\xc3", "a\xc3(b", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xe2\x80", "ok\xe2\x80\xa8ok", "\ufffd", "\x00", "tab\there\nnew\rline\bback\fform",
		strings.Repeat("base64+/=", 100),
	}
	for c := range 0x20 {
		s = append(s, string(rune(c)), "x"+string(rune(c))+"y")
	}
	return s
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range trickyStrings() {
		got := appendJSONString(nil, s)
		if want := encodingJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %s, encoding/json writes %s", s, got, want)
		}
	}
}

// TestAppendJSONStringAtEveryOffset puts each tricky string at every
// offset of the eight-byte fast path, between plain bytes.
func TestAppendJSONStringAtEveryOffset(t *testing.T) {
	for _, tricky := range trickyStrings() {
		for pre := range 17 {
			s := strings.Repeat("A", pre) + tricky + strings.Repeat("b", 17-pre)
			if got, want := appendJSONString(nil, s), encodingJSON(t, s); !bytes.Equal(got, want) {
				t.Errorf("appendJSONString(%q) = %s, encoding/json writes %s", s, got, want)
			}
		}
	}
}

// TestPlain8 checks the word-at-a-time test against the byte-at-a-time
// one for every byte value at every position.
func TestPlain8(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			w := []byte("aZ09+/= ")
			w[pos] = byte(c)
			want := true
			for _, b := range w {
				want = want && b >= ' ' && b < utf8.RuneSelf && b != '"' && b != '\\'
			}
			if got := plain8(string(w)); got != want {
				t.Errorf("plain8(%q) = %v, want %v", w, got, want)
			}
		}
	}
	// Several special bytes in one word, where borrows could interfere.
	rng := rand.New(rand.NewPCG(1, 2))
	special := []byte{0, 1, 0x1f, ' ', '!', '"', '#', '[', '\\', ']', '~', 0x7f, 0x80, 0xc3, 0xff}
	for range 200000 {
		w := make([]byte, 8)
		want := true
		for i := range w {
			w[i] = special[rng.IntN(len(special))]
			want = want && w[i] >= ' ' && w[i] < utf8.RuneSelf && w[i] != '"' && w[i] != '\\'
		}
		if got := plain8(string(w)); got != want {
			t.Fatalf("plain8(%q) = %v, want %v", w, got, want)
		}
	}
}

func TestCertificateAppendJSONMatchesEncodingJSON(t *testing.T) {
	base := time.Date(2026, 3, 4, 2, 15, 0, 0, time.UTC)
	revoked := base.Add(90 * time.Second)
	revokedNanos := base.Add(123456789)
	full := Certificate{
		Serial: "18446744073709551615", KeyID: "jit-ssh:user=alice:group=prod-db:req=r-abc:by=bob,dave", HostGroup: "prod-db",
		Principals: []string{"prod-db", "deploy"}, ValidAfter: base.Add(-2 * time.Minute), ValidBefore: base.Add(5 * time.Minute),
		Requester: "alice", RequestID: "r-abc", Approvers: []string{"bob", "dave"}, Fingerprint: "SHA256:abc+/", CAFingerprint: "SHA256:ca",
		Certificate: "ssh-ed25519-cert-v01@openssh.com AAAA+/==", IssuedAt: base, RevokedAt: &revoked, Reason: "INC-1 \"disk\" full\n",
	}
	tests := map[string]Certificate{
		"full":         full,
		"zero":         {},
		"empty slices": {Principals: []string{}, Approvers: []string{}},
		"nil slices":   {Serial: "1", Reason: ""},
		"nanoseconds": {ValidAfter: base.Add(1), ValidBefore: base.Add(120 * time.Millisecond), IssuedAt: base.Add(999999999),
			RevokedAt: &revokedNanos},
		"zones": {ValidAfter: base.In(time.FixedZone("", 5*3600+30*60)), ValidBefore: base.In(time.FixedZone("west", -8*3600)),
			IssuedAt: base.Local()},
		"unix epoch and far":  {ValidAfter: time.Unix(0, 0).UTC(), ValidBefore: time.Unix(0, 1<<62).UTC(), IssuedAt: time.Unix(0, -1<<62).UTC()},
		"year bounds":         {ValidAfter: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), ValidBefore: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		"reason only":         {Reason: "x"},
		"one empty principal": {Principals: []string{""}, Approvers: []string{"", ""}},
	}
	for _, s := range trickyStrings() {
		c := full
		c.Serial, c.KeyID, c.HostGroup, c.Requester, c.RequestID = s, s, s, s, s
		c.Fingerprint, c.CAFingerprint, c.Certificate, c.Reason = s, s, s, s
		c.Principals, c.Approvers = []string{s, "prod-db", s}, []string{s}
		tests["tricky "+strings.ToValidUTF8(s, "?")] = c
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := c.appendJSON([]byte("prefix"))
			if !ok {
				t.Fatalf("appendJSON refused %+v", c)
			}
			if want := encodingJSON(t, c); !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Errorf("appendJSON:\n got %s\nwant prefix%s", got, want)
			}
		})
	}
}

// TestCertificateAppendJSONLeavesBadTimesToEncodingJSON: a time
// encoding/json refuses makes appendJSON decline, so stream falls back to
// encoding/json and fails as before.
func TestCertificateAppendJSONLeavesBadTimesToEncodingJSON(t *testing.T) {
	bad := []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -100*3600)),
	}
	for _, tm := range bad {
		for _, c := range []Certificate{{ValidAfter: tm}, {ValidBefore: tm}, {IssuedAt: tm}, {RevokedAt: &tm}} {
			if _, err := json.Marshal(c); err == nil {
				t.Fatalf("encoding/json accepts %v: the test's premise is wrong", tm)
			}
			if _, ok := c.appendJSON(nil); ok {
				t.Errorf("appendJSON accepted %v, which encoding/json refuses", tm)
			}
		}
	}
}

// FuzzCertificateJSON: for any strings, appendJSON writes what
// encoding/json writes.
func FuzzCertificateJSON(f *testing.F) {
	for _, s := range trickyStrings() {
		f.Add(s, s, int64(0))
	}
	f.Add("r-1", "a\u2028\xff", int64(1<<62))
	f.Fuzz(func(t *testing.T, a, b string, nanos int64) {
		at := time.Unix(0, nanos).UTC()
		c := Certificate{Serial: a, KeyID: b, HostGroup: a + b, Principals: []string{a, b}, ValidAfter: at, ValidBefore: at,
			Requester: b, RequestID: a, Approvers: []string{b}, Fingerprint: a, Certificate: b, IssuedAt: at, RevokedAt: &at, Reason: a}
		got, ok := c.appendJSON(nil)
		if !ok {
			t.Fatalf("appendJSON refused %+v", c)
		}
		if want := encodingJSON(t, c); !bytes.Equal(got, want) {
			t.Errorf("appendJSON:\n got %s\nwant %s", got, want)
		}
	})
}

// TestCertificateListingIsWhatEncodingJSONWrites: GET /v1/certificates over
// a real ledger (tricky strings in every field and reason, revoked and
// unrevoked rows, more than one write chunk) is byte for byte what the
// server wrote with encoding/json before, and the client's pass-through
// export returns the same lines.
func TestCertificateListingIsWhatEncodingJSONWrites(t *testing.T) {
	f := newHardFixture(t)
	ctx := t.Context()
	tricky := trickyStrings()
	for i := range 5 {
		id := fmt.Sprintf("r-%016d", i)
		err := f.db.ApplyRequestChange(ctx, ca.RequestChange{Create: true, Request: &ca.Request{
			ID: id, HostGroup: "prod-db", Requester: "alice", State: ca.StateApproved, Reason: tricky[i*7%len(tricky)] + "<&> why",
			Duration: time.Hour, CreatedAt: f.clock.now(), UpdatedAt: f.clock.now(), ApprovedAt: f.clock.now(), Version: 1,
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	const n = 400 // about 1 KB each: more than one 256 KiB chunk
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s := tricky[i%len(tricky)]
			at := f.clock.now().Add(time.Duration(i) * 1234567 * time.Nanosecond)
			errs <- f.db.RecordCertificate(ctx, &ca.Certificate{
				Serial: uint64(i)*0x9e3779b97f4a7c15 + 1, KeyID: "jit-ssh:user=alice:" + s, HostGroup: "prod-db", Principals: []string{"prod-db", s},
				ValidAfter: at.Add(-2 * time.Minute), ValidBefore: at.Add(5 * time.Minute), Requester: "alice",
				RequestID: fmt.Sprintf("r-%016d", i%5), Approvers: []string{"bob", s}, Fingerprint: "SHA256:" + s, CAFingerprint: "SHA256:ca",
				Certificate: "ssh-ed25519-cert-v01@openssh.com " + strings.Repeat("AAAA+/", 160) + s, IssuedAt: at,
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.db.Revoke(ctx, ca.RevokeSpec{RequestID: "r-0000000000000003"}, "root", "lost", f.clock.now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	rows := 0
	if err := f.db.ListCertificates(ctx, ca.CertFilter{}, func(c *ca.Certificate) error {
		rows++
		return enc.Encode(certificateView(c))
	}); err != nil {
		t.Fatal(err)
	}
	if rows != n || want.Len() <= 256<<10 {
		t.Fatalf("the ledger lists %d certificates in %d bytes, want %d in more than a chunk", rows, want.Len(), n)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.ts.URL+"/v1/certificates", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenOf("carol"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/certificates: %d, %v", resp.StatusCode, err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		g, w := bytes.Split(got, []byte("\n")), bytes.Split(want.Bytes(), []byte("\n"))
		for i := range min(len(g), len(w)) {
			if !bytes.Equal(g[i], w[i]) {
				t.Fatalf("line %d differs:\n got %s\nwant %s", i, g[i], w[i])
			}
		}
		t.Fatalf("listing has %d lines, encoding/json %d", len(g), len(w))
	}

	c, err := NewClient(f.ts.URL, tokenOf("carol"))
	if err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	if err := c.ListCertificatesJSON(ctx, CertificateFilter{}, func(line []byte) error {
		lines.Write(line)
		return lines.WriteByte('\n')
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lines.Bytes(), want.Bytes()) {
		t.Errorf("ListCertificatesJSON's lines differ from the listing")
	}
}
