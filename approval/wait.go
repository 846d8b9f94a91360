package approval

import (
	"context"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// WaitForChange is the long poll on request id: Wait from version, the
// version the caller last saw, or, when it names none (nil), from the
// request's version now, so the answer comes once the request changes or
// maxWait passes.
func (s *Service) WaitForChange(ctx context.Context, login, id string, version *int64, maxWait time.Duration) (*ca.Request, error) {
	if version == nil {
		cur, err := s.Get(ctx, login, id)
		if err != nil {
			return nil, err
		}
		version = &cur.Version
	}
	return s.Wait(ctx, login, id, *version, maxWait)
}
