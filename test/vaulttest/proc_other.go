//go:build !linux

package vaulttest

import (
	"os/exec"
	"time"
)

func setProcAttr(*exec.Cmd) {}

func waitStopped(int) { time.Sleep(100 * time.Millisecond) }
