package main

import (
	"context"
	"errors"
	"fmt"
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
	keys, err := agent.Dial(e.getenv("SSH_AUTH_SOCK"))
	if err != nil {
		return err
	}
	held, err := holdsCert(keys, group, o.now())
	keys.Close()
	if err != nil || held {
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
