package approval

import (
	"context"
	"errors"
	"log/slog"
	"maps"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Event types of refused decisions. Their data holds the refusal's code
// and reason and what was attempted.
const (
	// EventRequestRefused: a request could not be filed, edited or
	// cancelled (data "action": create, edit or cancel).
	EventRequestRefused = "request.refused"
	// EventReviewRefused: a review was not accepted (data "event").
	EventReviewRefused = "review.refused"
)

// eventRecorder is the optional part of a Store that appends an event of
// its own, outside any request change (store.DB has it).
type eventRecorder interface {
	RecordEvent(ctx context.Context, ev ca.Event) error
}

// recordRefusal records a decision the policy refused (an error of kind
// ErrForbidden) with its code and reason, so the ledger shows who tried
// what and why it was refused. Other failures (bad input, conflicts,
// outages) are not policy decisions and are not recorded. A refusal that
// cannot be recorded is logged; it stands either way.
func (s *Service) recordRefusal(ctx context.Context, typ, login, requestID string, data map[string]any, err error) {
	var ae *Error
	if !errors.As(err, &ae) || !errors.Is(ae.Kind, ErrForbidden) {
		return
	}
	rec, ok := s.store.(eventRecorder)
	if !ok {
		return
	}
	if ca.CheckRequestID(requestID) != nil {
		requestID = ""
	}
	d := map[string]any{"code": ae.Code, "reason": ae.Message}
	maps.Copy(d, data)
	ev := ca.Event{Time: s.now().UTC(), Actor: login, Type: typ, RequestID: requestID, Data: d}
	if err := rec.RecordEvent(context.WithoutCancel(ctx), ev); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "recording a refusal failed", slog.String("type", typ),
			slog.String("code", ae.Code), slog.String("error", err.Error()))
	}
}
