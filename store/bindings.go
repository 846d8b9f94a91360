package store

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Bindings are the newest row digests an event chain records, per key,
// collected by Add while a ledger walks its events in order.
type Bindings struct {
	Req  map[string]ReqBinding
	Cert map[uint64]CertBinding
	// Baseline is the event and digest (in Req) of the SQLite ledger's
	// migration 0005 event binding its certificate_baseline table.
	Baseline *ReqBinding
}

// ReqBinding is the newest binding of a request: the event row and the
// digests of the request row and its reviews.
type ReqBinding struct {
	Ev       int64
	Req, Rev string
}

// CertBinding is the newest binding of a certificate row.
type CertBinding struct {
	Ev  int64
	Sum [32]byte
	// Mismatch: event Ev recorded the row as not matching the event log
	// when the server revoked it (DataRowMismatch); no content of the row
	// is bound since.
	Mismatch bool
}

// NewBindings returns empty bindings.
func NewBindings() *Bindings {
	return &Bindings{Req: map[string]ReqBinding{}, Cert: map[uint64]CertBinding{}}
}

// bindingMarker is in the data of every event that binds a row; events
// without it are not decoded.
var bindingMarker = []byte(`_sha256"`)

// rowMismatchMarker is in the data of an event that changed a row it found
// not matching the event log (DataRowMismatch).
var rowMismatchMarker = []byte(`"row_mismatch":true`)

// Add records the bindings event ce (with serial, its serial) holds; a
// later event replaces an earlier one's for the same key.
func (b *Bindings) Add(ce *CanonicalEvent, serial uint64) error {
	if !bytes.Contains(ce.Data, bindingMarker) && !bytes.Contains(ce.Data, rowMismatchMarker) {
		return nil
	}
	var d struct {
		Req      *string `json:"request_sha256"`
		Rev      *string `json:"reviews_sha256"`
		Cert     *string `json:"certificate_sha256"`
		Baseline *string `json:"certificate_baseline_sha256"`
		Mismatch bool    `json:"row_mismatch"`
	}
	if err := json.Unmarshal(ce.Data, &d); err != nil {
		return &ChainError{Row: ce.ID, Reason: "row bindings in the data are unreadable: " + err.Error()}
	}
	if d.Mismatch && d.Cert == nil && serial != 0 {
		b.Cert[serial] = CertBinding{Ev: ce.ID, Mismatch: true}
	}
	if d.Req != nil {
		rb := ReqBinding{Ev: ce.ID, Req: *d.Req}
		if d.Rev != nil {
			rb.Rev = *d.Rev
		}
		b.Req[ce.RequestID] = rb
	}
	if d.Cert != nil {
		var cb CertBinding
		if n, err := hex.Decode(cb.Sum[:], []byte(*d.Cert)); err != nil || n != len(cb.Sum) {
			return &ChainError{Row: ce.ID, Reason: "the certificate digest in the data is not a SHA-256"}
		}
		cb.Ev = ce.ID
		b.Cert[serial] = cb
	}
	if d.Baseline != nil {
		b.Baseline = &ReqBinding{Ev: ce.ID, Req: *d.Baseline}
	}
	return nil
}

// RowError returns the *ChainError naming a row of table (with key) that
// does not match event ev (0: no event binds it).
func RowError(ev int64, table, key, format string, args ...any) *ChainError {
	return &ChainError{Row: ev, Table: table, Key: key, Reason: fmt.Sprintf(format, args...)}
}

// Check returns a *ChainError when r (with its reviews) differs from b.
func (b ReqBinding) Check(r *ca.Request) error {
	if RequestDigest(r) != b.Req {
		return RowError(b.Ev, "requests", r.ID, "differs from what event row %d recorded of it: it was edited outside the server", b.Ev)
	}
	if ReviewsDigest(r) != b.Rev {
		return RowError(b.Ev, "reviews", "request_id="+r.ID, "the reviews of request %s differ from what event row %d recorded: one was edited, inserted or deleted outside the server", r.ID, b.Ev)
	}
	return nil
}

// Check returns a *ChainError when c differs from b.
func (b CertBinding) Check(c *CertRow) error {
	if b.Mismatch {
		return RowError(b.Ev, "certificates", "serial="+c.Serial, "did not match the event log when the server revoked it (event row %d): it was edited or inserted outside the server", b.Ev)
	}
	if c.digestSum() != b.Sum {
		return RowError(b.Ev, "certificates", "serial="+c.Serial, "differs from what event row %d recorded of it: it was edited outside the server", b.Ev)
	}
	return nil
}

// DigestSum returns c's digest as bytes.
func (c *CertRow) DigestSum() [32]byte { return c.digestSum() }
