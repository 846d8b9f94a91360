package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A run that names a command builds only that command; its help, usage
// errors and exit status must be what the whole tree gives.
func TestRootBuildsOnlyTheNamedCommand(t *testing.T) {
	newEnv := func(out, errb *bytes.Buffer) *env {
		return &env{stdin: strings.NewReader(""), stdout: out, stderr: errb, getenv: func(string) string { return "" }}
	}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
		var out, errb bytes.Buffer
		root := newRootCmd(newEnv(&out, &errb), []string{c.name, "--help"})
		var got []string
		for _, sub := range root.Commands() {
			got = append(got, sub.Name())
		}
		if !slices.Equal(got, []string{c.name}) {
			t.Errorf("a run of %q builds %v, want only [%s]", c.name, got, c.name)
		}
	}

	full := newRootCmd(newEnv(new(bytes.Buffer), new(bytes.Buffer)), []string{"--help"})
	var all []string
	for _, sub := range full.Commands() {
		all = append(all, sub.Name())
	}
	slices.Sort(all)
	slices.Sort(names)
	if !slices.Equal(all, names) {
		t.Errorf("the whole tree has %v, the table %v", all, names)
	}

	// The same command lines through the one-command tree (run) and the
	// whole tree give the same output and status.
	for _, args := range [][]string{
		{"login", "--help"},
		{"login"},
		{"login", "a", "b"},
		{"login", "--no-such-flag", "staging"},
		{"login", "--output", "xml", "staging"},
		{"audit", "--help"},
		{"audit", "certs", "--help"},
		{"request", "list", "--help"},
		{"version", "extra"},
		{"version", "--help"},
	} {
		var out1, err1, out2, err2 bytes.Buffer
		code1 := run(t.Context(), args, strings.NewReader(""), &out1, &err1)

		root := newRootCmd(newEnv(&out2, &err2), nil)
		root.SetArgs(args)
		root.SetOut(&out2)
		root.SetErr(&err2)
		code2 := exitOK
		if err := root.ExecuteContext(t.Context()); err != nil {
			err2.WriteString("jit-ssh: " + message(err) + "\n")
			code2 = exitCode(err)
		}
		if code1 != code2 || out1.String() != out2.String() || err1.String() != err2.String() {
			t.Errorf("%q: one-command tree gave %d %q %q, whole tree %d %q %q",
				args, code1, out1.String(), err1.String(), code2, out2.String(), err2.String())
		}
	}
}

// notifyContext cancels its context on the first signal, like
// signal.NotifyContext, although it registers for the signal in the
// background.
func TestNotifyContextCancelsOnSignal(t *testing.T) {
	// A channel of the test's own keeps SIGUSR1 from ending the test binary
	// while notifyContext is still registering.
	probe := make(chan os.Signal, 1)
	signal.Notify(probe, syscall.SIGUSR1)
	defer signal.Stop(probe)

	ctx, stop := notifyContext(context.Background(), syscall.SIGUSR1)
	defer stop()
	if ctx.Err() != nil {
		t.Fatalf("the context is done before any signal: %v", ctx.Err())
	}
	// Signal until the registration is in place and the context ends.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for ctx.Err() == nil {
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-timeout:
			t.Fatal("SIGUSR1 never cancelled the context")
		}
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("ctx.Err() = %v, want context.Canceled", ctx.Err())
	}
}

// stop ends the context without a signal.
func TestNotifyContextStop(t *testing.T) {
	ctx, stop := notifyContext(context.Background(), syscall.SIGUSR2)
	stop()
	stop() // twice is harmless
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("after stop, ctx.Err() = %v, want context.Canceled", ctx.Err())
	}
}
