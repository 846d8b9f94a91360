package approval

import "time"

// Bounds of a host group's policy.
const (
	// MaxGrant is the longest grant a policy may allow (max_duration).
	MaxGrant = 7 * 24 * time.Hour
	// MaxApprovals is the most approvals a policy may require.
	MaxApprovals = 10
)
