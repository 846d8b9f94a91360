//go:build !unix

package vault_test

import "time"

// processCPU is not measured here: cpu-us/op is not reported.
func processCPU() time.Duration { return 0 }
