// Command jit-ssh is the Just-In-Time SSH access tool: the CA service
// (serve), the engineer's client (login, status, logout), the approver's
// review commands, the host operator's host commands and the auditor's
// audit commands. This package is the only one that knows cobra, flags,
// environment variables and logging setup.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// Exit statuses (SPEC section 3).
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitDenied   = 3
	exitTimedOut = 4
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := notifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// notifyContext is signal.NotifyContext without its wait. The first
// signal.Notify of a process makes the runtime start a thread for signal
// masks and waits for it: 0.4 to 4 ms at process start on a 2-core machine,
// spent by every command before it begins. Here the registration runs on its
// own goroutine; a signal that arrives before it is in place has its default
// effect, as one that arrives before main does. As with signal.NotifyContext,
// the first signal cancels the context and later ones are caught until stop.
func notifyContext(parent context.Context, signals ...os.Signal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, signals...)
		defer signal.Stop(c)
		select {
		case <-c:
			cancel()
			<-done
		case <-ctx.Done(): // the parent's end, or stop
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() { close(done) })
		cancel()
	}
}

// run executes the command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(&env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}, args)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(termWriter{stderr}, "jit-ssh: "+message(err))
	return exitCode(err)
}

// usageError marks command-line mistakes (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// deniedError marks refusals (exit 3).
type deniedError struct{ err error }

func (e *deniedError) Error() string { return e.err.Error() }
func (e *deniedError) Unwrap() error { return e.err }

// errTimedOut is returned when waiting for approval ran out (exit 4).
var errTimedOut = errors.New("timed out waiting for approval")

func exitCode(err error) int {
	var ue *usageError
	var de *deniedError
	var ae *api.Error
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ae) && ae.Code == approval.CodeReasonRequired:
		return exitUsage
	case errors.As(err, &de):
		return exitDenied
	case errors.Is(err, errTimedOut):
		return exitTimedOut
	case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
		return exitDenied
	default:
		return exitError
	}
}

// message renders an error as one sentence for people.
func message(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		switch {
		case ae.Code == approval.CodeReasonRequired:
			return ae.Message + `; give one with --reason "..."`
		case ae.Status == http.StatusUnauthorized && ae.Code != approval.CodeUnauthenticated:
			// Not a jit-ssh server's own refusal (those say how to sign
			// in): a proxy in front of it, say.
			return ae.Message + " (sign in with 'jit-ssh auth login' or set JIT_SSH_TOKEN)"
		default:
			return ae.Message
		}
	}
	return err.Error()
}
