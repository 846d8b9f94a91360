package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jit-ssh/jit-ssh/agent"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

func newStatusCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show your grants, pending requests and this tool's certificates in ssh-agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), e)
		},
	}
}

type statusView struct {
	Grants  []api.Request `json:"grants"`
	Pending []api.Request `json:"pending"`
	// FollowUps are the caller's break-glass grants whose follow-up review
	// is still to be done (of any age: an overdue one blocks the next
	// break glass).
	FollowUps []api.Request `json:"follow_ups"`
	Agent     []agentView   `json:"agent"`
}

type agentView struct {
	HostGroup   string    `json:"host_group"`
	Serial      string    `json:"serial"`
	KeyID       string    `json:"key_id"`
	Principals  []string  `json:"principals"`
	ValidBefore time.Time `json:"valid_before"`
}

func runStatus(ctx context.Context, e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	now := time.Now()
	v := statusView{Grants: []api.Request{}, Pending: []api.Request{}, FollowUps: []api.Request{}, Agent: []agentView{}}
	mine, err := c.ListRequests(ctx, api.ListRequestsOptions{Mine: true})
	if err != nil {
		return err
	}
	for _, r := range mine {
		switch {
		case r.OpenAt(now):
			v.Grants = append(v.Grants, r)
		case r.State == ca.StatePending:
			v.Pending = append(v.Pending, r)
		}
		if r.BreakGlass && r.FollowUp == ca.FollowUpNeedsReview {
			v.FollowUps = append(v.FollowUps, r)
		}
	}
	var agentErr error
	if keys, err := agent.Dial(e.getenv("SSH_AUTH_SOCK")); err != nil {
		agentErr = err
	} else {
		defer keys.Close()
		entries, err := keys.List()
		if err != nil {
			return err
		}
		for _, en := range entries {
			v.Agent = append(v.Agent, agentView{HostGroup: en.Group, Serial: fmt.Sprint(en.Serial), KeyID: en.KeyID, Principals: en.Principals, ValidBefore: en.ValidBefore.UTC()})
		}
	}
	if e.output == "json" {
		return e.printJSON(v)
	}
	tw := e.table()
	fmt.Fprintln(tw, "GRANTS\tREQUEST\tENDS IN\tAPPROVED BY")
	for _, r := range v.Grants {
		by := strings.Join(r.Approvals, ",")
		if r.BreakGlass {
			by = ca.BreakGlassBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cell(r.HostGroup), cell(r.ID), until(*r.GrantEndsAt, now), cell(by))
	}
	if len(v.Grants) == 0 {
		fmt.Fprintln(tw, "(none)\t\t\t")
	}
	fmt.Fprintln(tw, "\nPENDING\tREQUEST\tWAITING FOR\t")
	for _, r := range v.Pending {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", cell(r.HostGroup), cell(r.ID), cell(asked(&r)))
	}
	if len(v.Pending) == 0 {
		fmt.Fprintln(tw, "(none)\t\t\t")
	}
	if len(v.FollowUps) > 0 {
		fmt.Fprintln(tw, "\nBREAK GLASS\tREQUEST\tFOLLOW-UP REVIEW\t")
		for _, r := range v.FollowUps {
			due := "due in " + until(*r.ReviewDueAt, now)
			if !now.Before(*r.ReviewDueAt) {
				due = "OVERDUE since " + fmtTime(r.ReviewDueAt) + ": no new break glass until an approver reviews it"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t\n", cell(r.HostGroup), cell(r.ID), due)
		}
	}
	fmt.Fprintln(tw, "\nIN SSH-AGENT\tSERIAL\tTIME LEFT\tPRINCIPALS")
	for _, a := range v.Agent {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.HostGroup, a.Serial, until(a.ValidBefore, now), strings.Join(a.Principals, ","))
	}
	if len(v.Agent) == 0 {
		fmt.Fprintln(tw, "(none)\t\t\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if agentErr != nil {
		fmt.Fprintln(e.stderr, "note:", strings.TrimPrefix(agentErr.Error(), "agent: "))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type logoutOptions struct {
	end bool
}

func newLogoutCmd(e *env) *cobra.Command {
	o := &logoutOptions{}
	cmd := &cobra.Command{
		Use:   "logout [GROUP]",
		Short: "Remove this tool's certificates from ssh-agent (and optionally end the grant)",
		Long: `Remove this tool's certificates for GROUP (or for every group) from ssh-agent.
Your other keys are left alone. With --end, also end your open grant(s) on the
server so no new certificate can be minted under them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			group := ""
			if len(args) == 1 {
				group = args[0]
			}
			return o.run(cmd.Context(), e, group)
		},
	}
	cmd.Flags().BoolVar(&o.end, "end", false, "also end the open grant(s) on the server")
	return cmd
}

func (o *logoutOptions) run(ctx context.Context, e *env, group string) error {
	if group != "" {
		if err := ca.CheckGroup(group); err != nil {
			return &usageError{err}
		}
	}
	// With --end a missing agent does not stop the grant from ending: that
	// is the part that matters on the server.
	var errs []error
	if err := removeFromAgent(e, group); err != nil {
		if !o.end {
			return err
		}
		errs = append(errs, err)
	}
	if !o.end {
		return nil
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	mine, err := c.ListRequests(ctx, api.ListRequestsOptions{Mine: true, State: ca.StateApproved})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, r := range mine {
		if (group != "" && r.HostGroup != group) || !r.OpenAt(time.Now()) {
			continue
		}
		if _, err := c.CancelRequest(ctx, r.ID); err != nil {
			errs = append(errs, fmt.Errorf("ending grant %s: %w", r.ID, err))
			continue
		}
		e.rememberGrant(e.serverURL(), r.HostGroup, "", time.Time{})
		fmt.Fprintf(e.stdout, "Ended grant %s for %s.\n", r.ID, r.HostGroup)
	}
	return errors.Join(errs...)
}

// removeFromAgent removes this tool's certificates for group (every group
// when empty) from the agent and says how many it removed.
func removeFromAgent(e *env, group string) error {
	keys, err := agent.Dial(e.getenv("SSH_AUTH_SOCK"))
	if err != nil {
		return err
	}
	defer keys.Close()
	n, err := keys.Remove(group)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Removed %d certificate(s) from ssh-agent.\n", n)
	return nil
}
