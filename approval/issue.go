package approval

import (
	"context"
	"errors"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// IssueCertificate issues login a certificate for publicKey (authorized_keys
// form) under request requestID: validate the key, authorize the grant now
// (Authorize), then sign and record through the issuer, which hands the
// certificate out only once the ledger holds it. It needs WithIssuer.
//
// Every failure but a failed sign-in is recorded as a certificate.refused
// event (ca.EventIssueRefused; identical ones counted, see RefusalWindow)
// with the code and reason the caller is told (Failure), so the ledger
// shows each refused attempt.
func (a *Authority) IssueCertificate(ctx context.Context, login, requestID, publicKey string) (_ *ca.Certificate, err error) {
	defer func() {
		if err != nil {
			a.refusedIssue(ctx, login, requestID, publicKey, Failure(err))
		}
	}()
	pub, err := ca.ParseSubjectKey(publicKey)
	if err != nil {
		return nil, err
	}
	grant, err := a.svc.Authorize(ctx, login, requestID)
	if err != nil {
		return nil, err
	}
	rec, _, err := a.issuer.Issue(ctx, grant, pub)
	return rec, err
}

// refusedIssue records a refused issuance. A ledger that cannot record the
// refusal cannot have recorded a certificate either, so RecordRefusal only
// logs that failure.
func (a *Authority) refusedIssue(ctx context.Context, login, requestID, publicKey string, why *Error) {
	if errors.Is(why.Kind, ErrUnauthenticated) {
		return
	}
	if ca.CheckRequestID(requestID) != nil {
		requestID = ""
	}
	data := map[string]any{"code": why.Code, "reason": why.Message}
	// The subject key's fingerprint ties a refusal to the key that was
	// presented (a refused key type included); a line that is not a key
	// is not echoed. The body cap bounds the line.
	if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(publicKey)); err == nil {
		data["fingerprint"] = ca.Fingerprint(pub)
	}
	a.svc.RecordRefusal(ctx, ca.Event{
		Time: a.now().UTC(), Actor: login, Type: ca.EventIssueRefused, RequestID: requestID, Data: data,
	})
}
