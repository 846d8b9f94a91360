package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jit-ssh/jit-ssh/agent"
	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// ensureMargin: 'login --ensure' is a no-op while the agent holds a
// certificate for the group with more time left than this, so an ssh
// session started now does not race its certificate's end.
const ensureMargin = time.Minute

// runEnsure is 'jit-ssh login --ensure GROUP', what the ssh_config block of
// 'jit-ssh ssh-config' runs before every ssh to the group's hosts. When the
// agent already holds this tool's certificate for the group with more than
// ensureMargin left it returns at once, prints nothing and makes no network
// call (no token lookup either). Otherwise it is the normal login with every
// line on stderr: ssh discards the command's stdout, and anything printed
// there would be lost, or worse, mixed into the output of a tool that
// reads ssh's.
func (o *loginOptions) runEnsure(ctx context.Context, e *env, group string) error {
	o.group = group
	if err := ca.CheckGroup(group); err != nil {
		return &usageError{fmt.Errorf("%q is not a host group name", group)}
	}
	if o.noWait {
		return &usageError{errors.New("--ensure waits for the certificate it ensures; it does not combine with --no-wait")}
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.after == nil {
		o.after = time.After
	}
	keys, err := agent.Dial(e.getenv("SSH_AUTH_SOCK"))
	if err != nil {
		return err
	}
	defer keys.Close()
	if held, err := holdsCert(keys, group, o.now()); err != nil || held {
		return err
	}
	// Several ssh processes at once (pssh, Ansible) would each file a
	// request: the first to get the lock logs in, the others find its
	// certificate in the agent once they have the lock.
	release, err := o.lockEnsure(ctx, e)
	if err != nil {
		return err
	}
	defer release()
	if held, err := holdsCert(keys, group, o.now()); err != nil || held {
		return err
	}
	e.stdout = e.stderr
	err = o.run(ctx, e, generateKey())
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == approval.CodeReasonRequired {
		// Nobody can type a reason into ssh: ask once by hand, and the
		// renewals inside that grant need none.
		return &usageError{fmt.Errorf("%s; ask once with 'jit-ssh login %s --reason \"...\"', then ssh renews the certificate by itself while the grant lasts", ae.Message, group)}
	}
	return err
}

// lockEnsure takes the lock of 'login --ensure' for o.group, an exclusive
// flock on ensure-GROUP.lock next to the grant cache, waiting (with a word
// on stderr) while another process holds it, for at most o.timeout; the
// function it returns releases it. With no cache directory, or a lock file
// that cannot be opened, there is no lock: it spares the server duplicate
// requests, and a login without it is still correct.
func (o *loginOptions) lockEnsure(ctx context.Context, e *env) (func(), error) {
	none := func() {}
	cache := e.grantsFile()
	if cache == "" {
		return none, nil
	}
	path := filepath.Join(filepath.Dir(cache), "ensure-"+o.group+".lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return none, nil //nolint:nilerr // no lock, see above
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // our own cache file; the group name is checked
	if err != nil {
		return none, nil //nolint:nilerr // no lock, see above
	}
	deadline := o.after(o.timeout)
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) //nolint:gosec // a file descriptor fits an int
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return none, nil
		}
		if !waiting {
			fmt.Fprintf(e.stderr, "Waiting for another 'jit-ssh login --ensure %s' to finish...\n", o.group)
			waiting = true
		}
		select {
		case <-o.after(100 * time.Millisecond):
		case <-deadline:
			_ = f.Close()
			return nil, fmt.Errorf("%w: another 'jit-ssh login --ensure %s' still holds %s after %s", errTimedOut, o.group, path, o.timeout)
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("stopped waiting for another 'jit-ssh login --ensure %s'", o.group)
		}
	}
}

// holdsCert reports whether keys hold this tool's certificate for group
// (an entry whose agent comment names the group) valid for more than
// ensureMargin after now.
func holdsCert(keys *agent.Keyring, group string, now time.Time) (bool, error) {
	entries, err := keys.List()
	if err != nil {
		return false, err
	}
	for _, en := range entries {
		if en.Group == group && en.ValidBefore.Sub(now) > ensureMargin {
			return true, nil
		}
	}
	return false, nil
}
