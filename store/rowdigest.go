package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Row bindings. Every row the server decides from is bound to the event
// chain: the event that last changed a request (with its reviews) or a
// certificate carries, in its data, the SHA-256 of the row's canonical
// content after the change. The chain's hashes cover the event data, so a
// row edited, inserted or deleted outside the server no longer matches the
// newest event that binds its key, and Verify names it; GetRequest checks
// the same before the server decides from a request.
const (
	// DataRequestSHA256 is the event-data key holding the digest of a
	// request row (RequestDigest) after the change the event records.
	DataRequestSHA256 = "request_sha256"
	// DataReviewsSHA256 holds the digest of the request's reviews, in id
	// order (ReviewsDigest).
	DataReviewsSHA256 = "reviews_sha256"
	// DataCertificateSHA256 holds the digest of a certificate row
	// (CertRow.Digest), revocation columns included.
	DataCertificateSHA256 = "certificate_sha256"
	// DataBaselineSHA256 holds, in the EventRowsBound event of the SQLite
	// ledger's migration 0005, the digest of its certificate_baseline
	// table.
	DataBaselineSHA256 = "certificate_baseline_sha256"
	// DataRowMismatch is the event-data key, set to true, of a revocation
	// (or a grant ended by one) whose row did not match the event log when
	// the server changed it: the server still revokes (a revocation is
	// never skipped) but does not bind the row's content, and audit verify
	// keeps naming the row.
	DataRowMismatch = "row_mismatch"
)

// canonicalRequest is the encoding a request row's digest covers: every
// column, times in Unix nanoseconds, NULL times as 0.
type canonicalRequest struct {
	ID         string `json:"id"`
	HostGroup  string `json:"host_group"`
	Requester  string `json:"requester"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	DurationNS int64  `json:"duration_ns"`
	CreatedAt  int64  `json:"created_at"`
	UpdatedAt  int64  `json:"updated_at"`
	ApprovedAt int64  `json:"approved_at"`
	EndedAt    int64  `json:"ended_at"`
	Version    int64  `json:"version"`
	// The break-glass columns are left out while they hold their
	// defaults, so a request that is not break glass keeps the digest it
	// had before them and older ledgers verify unchanged. On a break-glass
	// row they are all covered: the follow-up decision is bound to the
	// chain like the state.
	BreakGlass   bool   `json:"break_glass,omitempty"`
	FollowUp     string `json:"follow_up,omitempty"`
	ReviewDueAt  int64  `json:"review_due_at,omitempty"`
	FollowedUpAt int64  `json:"followed_up_at,omitempty"`
}

// canonicalReview is the encoding of one review row in ReviewsDigest.
type canonicalReview struct {
	ID        int64  `json:"id"`
	Reviewer  string `json:"reviewer"`
	Event     string `json:"event"`
	Body      string `json:"body"`
	CreatedAt int64  `json:"created_at"`
	Dismissed bool   `json:"dismissed"`
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func digestJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: encoding a row digest: %v", err)) // plain structs of strings and numbers
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// RequestDigest returns the digest of r's request row (not its reviews),
// times in Unix nanoseconds as a ledger stores them.
func RequestDigest(r *ca.Request) string {
	return digestJSON(canonicalRequest{
		ID: r.ID, HostGroup: r.HostGroup, Requester: r.Requester, State: r.State, Reason: r.Reason,
		DurationNS: int64(r.Duration), CreatedAt: r.CreatedAt.UnixNano(), UpdatedAt: r.UpdatedAt.UnixNano(),
		ApprovedAt: unixOrZero(r.ApprovedAt), EndedAt: unixOrZero(r.EndedAt), Version: r.Version,
		BreakGlass: r.BreakGlass, FollowUp: r.FollowUp, ReviewDueAt: unixOrZero(r.ReviewDueAt), FollowedUpAt: unixOrZero(r.FollowedUpAt),
	})
}

// ReviewsDigest returns the digest of r's reviews in the order a ledger
// reads them (by id).
func ReviewsDigest(r *ca.Request) string {
	out := make([]canonicalReview, 0, len(r.Reviews))
	for _, rv := range r.Reviews {
		out = append(out, canonicalReview{ID: rv.ID, Reviewer: rv.Reviewer, Event: rv.Event, Body: rv.Body,
			CreatedAt: rv.CreatedAt.UnixNano(), Dismissed: rv.Dismissed})
	}
	return digestJSON(out)
}

// CertRow is a certificates row as stored (NULL revocation columns as 0
// and ""), the content its digest covers.
type CertRow struct {
	Serial        string // the uint64 serial in decimal
	KeyID         string
	HostGroup     string
	Principals    string // the stored JSON text
	ValidAfter    int64
	ValidBefore   int64
	Requester     string
	RequestID     string
	Approvers     string // the stored JSON text
	Fingerprint   string
	CAFingerprint string
	Certificate   string
	IssuedAt      int64
	RevokedAt     int64 // NULL: 0
	RevokeReason  string
}

// NewCertRow returns the row RecordCertificate stores for c (not revoked),
// and the principals and approvers as their stored JSON text.
func NewCertRow(c *ca.Certificate) (CertRow, error) {
	principals, err := json.Marshal(c.Principals)
	if err != nil {
		return CertRow{}, fmt.Errorf("store: %w", err)
	}
	approvers := c.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	ap, err := json.Marshal(approvers)
	if err != nil {
		return CertRow{}, fmt.Errorf("store: %w", err)
	}
	return CertRow{
		Serial: strconv.FormatUint(c.Serial, 10), KeyID: c.KeyID, HostGroup: c.HostGroup, Principals: string(principals),
		ValidAfter: c.ValidAfter.UnixNano(), ValidBefore: c.ValidBefore.UnixNano(), Requester: c.Requester, RequestID: c.RequestID,
		Approvers: string(ap), Fingerprint: c.Fingerprint, CAFingerprint: c.CAFingerprint, Certificate: c.Certificate,
		IssuedAt: c.IssuedAt.UnixNano(),
	}, nil
}

// Digest is the SHA-256 of the row's fields in column order, each as its
// length in bytes, a colon, the value and a newline (integers in decimal):
// unambiguous, and cheaper on the issuance path than encoding JSON.
func (c *CertRow) Digest() string {
	sum := c.digestSum()
	return hex.EncodeToString(sum[:])
}

func (c *CertRow) digestSum() [sha256.Size]byte {
	h := sha256.New()
	var buf []byte
	field := func(v string) {
		buf = strconv.AppendInt(buf[:0], int64(len(v)), 10)
		buf = append(buf, ':')
		buf = append(buf, v...)
		buf = append(buf, '\n')
		h.Write(buf)
	}
	num := func(n int64) { field(strconv.FormatInt(n, 10)) }
	field(c.Serial)
	field(c.KeyID)
	field(c.HostGroup)
	field(c.Principals)
	num(c.ValidAfter)
	num(c.ValidBefore)
	field(c.Requester)
	field(c.RequestID)
	field(c.Approvers)
	field(c.Fingerprint)
	field(c.CAFingerprint)
	field(c.Certificate)
	num(c.IssuedAt)
	num(c.RevokedAt)
	field(c.RevokeReason)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// CertificateIssuedEvent returns the certificate.issued event that records
// c, binding row (NewCertRow of c).
func CertificateIssuedEvent(c *ca.Certificate, row *CertRow) ca.Event {
	approvers := c.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	return ca.Event{
		Time: c.IssuedAt, Actor: c.Requester, Type: ca.EventCertIssued, RequestID: c.RequestID, Serial: c.Serial,
		Data: map[string]any{
			"key_id": c.KeyID, "host_group": c.HostGroup, "principals": c.Principals,
			"valid_after": c.ValidAfter, "valid_before": c.ValidBefore, "approvers": approvers,
			"fingerprint": c.Fingerprint, "ca_fingerprint": c.CAFingerprint,
			DataCertificateSHA256: row.Digest(),
		},
	}
}
