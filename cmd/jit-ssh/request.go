package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

func newRequestCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Create, list, show, edit and cancel access requests",
	}
	cmd.AddCommand(newRequestCreateCmd(e), newRequestListCmd(e), newRequestShowCmd(e), newRequestEditCmd(e), newRequestCancelCmd(e))
	return cmd
}

func checkID(id string) error {
	if ca.CheckRequestID(id) != nil {
		return &usageError{fmt.Errorf("%q is not a request ID (they look like r-abcdefghijklmnop)", id)}
	}
	return nil
}

func newRequestCreateCmd(e *env) *cobra.Command {
	var duration time.Duration
	var reason string
	cmd := &cobra.Command{
		Use:     "create GROUP --duration D --reason R",
		Short:   "Request access to a host group",
		Example: `  jit-ssh request create prod-db --duration 30m --reason "INC-1234: replica lag"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			in := api.CreateRequest{HostGroup: args[0], Reason: reason}
			if duration > 0 {
				in.Duration = duration.String()
			}
			r, err := c.CreateRequest(cmd.Context(), in)
			if err != nil {
				return err
			}
			return e.printRequest(r)
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 0, "grant length (default: the group's default)")
	cmd.Flags().StringVar(&reason, "reason", "", "why you need access (required where the group needs approval: its approvers decide from it)")
	return cmd
}

func newRequestListCmd(e *env) *cobra.Command {
	var o api.ListRequestsOptions
	cmd := &cobra.Command{
		Use:   "list [--mine] [--reviewable] [--state S]",
		Short: "List requests",
		Long: `List requests. --mine lists yours; --reviewable lists pending requests you may
review and break-glass grants whose follow-up review you may record. Without
either, auditors see every request and others their own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			reqs, err := c.ListRequests(cmd.Context(), o)
			if err != nil {
				return err
			}
			if e.output == "json" {
				for _, r := range reqs {
					if err := e.printJSON(r); err != nil {
						return err
					}
				}
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "ID\tGROUP\tREQUESTER\tSTATE\tDURATION\tAPPROVALS\tCREATED\tREASON")
			for _, r := range reqs {
				approvals := fmt.Sprintf("%d/%d", len(r.Approvals), r.ApprovalsRequired)
				if r.BreakGlass {
					approvals = ca.BreakGlassBy
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(r.ID), cell(r.HostGroup), cell(r.Requester), cell(stateCell(&r)), cell(r.Duration),
					approvals, r.CreatedAt.UTC().Format(time.RFC3339), oneLine(r.Reason, 50))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&o.Mine, "mine", false, "only your requests")
	cmd.Flags().BoolVar(&o.Reviewable, "reviewable", false, "only pending requests and break-glass follow-ups you may review")
	cmd.Flags().StringVar(&o.State, "state", "", "only requests in this state: pending, approved, denied, expired, cancelled")
	return cmd
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return orDash(s)
}

func newRequestShowCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a request with its reviews",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			r, err := c.GetRequest(cmd.Context(), args[0], 0, 0)
			if err != nil {
				return err
			}
			return e.printRequest(r)
		},
	}
}

func newRequestEditCmd(e *env) *cobra.Command {
	var duration time.Duration
	var reason string
	cmd := &cobra.Command{
		Use:   "edit ID [--duration D] [--reason R]",
		Short: "Narrow a pending request or change its reason (dismisses earlier reviews)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			in := api.EditRequest{}
			if duration > 0 {
				in.Duration = duration.String()
			}
			if cmd.Flags().Changed("reason") {
				in.Reason = &reason
			}
			if in.Duration == "" && in.Reason == nil {
				return &usageError{errors.New("give --duration and/or --reason")}
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			r, err := c.EditRequest(cmd.Context(), args[0], in)
			if err != nil {
				return err
			}
			return e.printRequest(r)
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 0, "new, shorter grant length")
	cmd.Flags().StringVar(&reason, "reason", "", "new reason")
	return cmd
}

func newRequestCancelCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a pending request, or end an open grant early",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			r, err := c.CancelRequest(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return e.printRequest(r)
		},
	}
}

// printRequest shows one request: a JSON object, or a readable summary.
func (e *env) printRequest(r *api.Request) error {
	if e.output == "json" {
		return e.printJSON(r)
	}
	tw := e.table()
	fmt.Fprintf(tw, "Request:\t%s\n", cell(r.ID))
	fmt.Fprintf(tw, "Host group:\t%s\n", cell(r.HostGroup))
	fmt.Fprintf(tw, "Requester:\t%s\n", cell(r.Requester))
	fmt.Fprintf(tw, "State:\t%s\n", cell(r.State))
	fmt.Fprintf(tw, "Reason:\t%s\n", cell(r.Reason))
	fmt.Fprintf(tw, "Duration:\t%s\n", r.Duration)
	fmt.Fprintf(tw, "Created:\t%s\n", r.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Approved:\t%s\n", fmtTime(r.ApprovedAt))
	fmt.Fprintf(tw, "Grant ends:\t%s\n", fmtTime(r.GrantEndsAt))
	if r.BreakGlass {
		fmt.Fprintf(tw, "Break glass:\t%s\n", followUpLine(r, time.Now()))
	} else {
		fmt.Fprintf(tw, "Approvals:\t%d of %d (%s)\n", len(r.Approvals), r.ApprovalsRequired, cell(strings.Join(r.Approvals, ", ")))
	}
	if len(r.ChangesRequestedBy) > 0 {
		fmt.Fprintf(tw, "Changes requested by:\t%s\n", cell(strings.Join(r.ChangesRequestedBy, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, rv := range r.Reviews {
		dismissed := ""
		if rv.Dismissed {
			dismissed = " (dismissed by an edit)"
		}
		fmt.Fprintf(e.stdout, "  %s %s %s%s", rv.CreatedAt.UTC().Format(time.RFC3339), cell(rv.Reviewer), cell(rv.Event), dismissed)
		if rv.Body != "" {
			fmt.Fprintf(e.stdout, ": %s", oneLine(rv.Body, 200))
		}
		fmt.Fprintln(e.stdout)
	}
	return nil
}

func newReviewCmd(e *env) *cobra.Command {
	var approve, changes, comment, deny bool
	var body string
	cmd := &cobra.Command{
		Use:   "review ID (--approve | --request-changes | --comment | --deny) [-m BODY]",
		Short: "Review a request like a pull request",
		Long: `Review a request. --approve counts towards the approvals the group needs;
--request-changes blocks approval until you approve or the requester edits the
request; --comment only adds a note; --deny refuses the request for good.
--request-changes, --comment and --deny need a body (-m).

On a break-glass grant the same flags record its follow-up review: --approve
as justified; --request-changes or --deny as not justified, which ends the
grant and revokes its certificates at once. The requester cannot record it.`,
		Example: `  jit-ssh review r-abcdefghijklmnop --approve -m "ok for INC-1234"
  jit-ssh review r-abcdefghijklmnop --request-changes -m "30m is enough"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			var events []string
			for ev, on := range map[string]bool{ca.ReviewApprove: approve, ca.ReviewRequestChanges: changes, ca.ReviewComment: comment, ca.ReviewDeny: deny} {
				if on {
					events = append(events, ev)
				}
			}
			if len(events) != 1 {
				return &usageError{errors.New("give exactly one of --approve, --request-changes, --comment or --deny")}
			}
			return runReview(cmd.Context(), e, args[0], events[0], body)
		},
	}
	cmd.Flags().BoolVar(&approve, "approve", false, "approve the request")
	cmd.Flags().BoolVar(&changes, "request-changes", false, "block the request until it is edited or you approve")
	cmd.Flags().BoolVar(&comment, "comment", false, "comment without approving or blocking")
	cmd.Flags().BoolVar(&deny, "deny", false, "deny the request (final)")
	cmd.Flags().StringVarP(&body, "message", "m", "", "review body")
	return cmd
}

func runReview(ctx context.Context, e *env, id, event, body string) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	r, err := c.Review(ctx, id, api.ReviewRequest{Event: event, Body: body})
	if err != nil {
		return err
	}
	if e.output == "json" {
		return e.printJSON(r)
	}
	if r.BreakGlass {
		switch r.FollowUp {
		case ca.FollowUpNotJustified:
			fmt.Fprintf(e.stdout, "Reviewed %s (%s): break-glass grant recorded as not justified; the grant ended and its certificates are revoked (hosts refuse them after 'jit-ssh host sync').\n", r.ID, strings.ToLower(event))
		case ca.FollowUpJustified:
			fmt.Fprintf(e.stdout, "Reviewed %s (%s): break-glass grant recorded as justified.\n", r.ID, strings.ToLower(event))
		default:
			fmt.Fprintf(e.stdout, "Reviewed %s (%s): break-glass follow-up still needs review (%s).\n", r.ID, strings.ToLower(event), followUpLine(r, time.Now()))
		}
		return nil
	}
	fmt.Fprintf(e.stdout, "Reviewed %s (%s): request is %s, %d of %d approvals.\n", r.ID, strings.ToLower(event), r.State, len(r.Approvals), r.ApprovalsRequired)
	return nil
}

// stateCell is a request's state for a listing; a break-glass grant adds
// its follow-up ("approved, break glass: needs_review").
func stateCell(r *api.Request) string {
	if !r.BreakGlass {
		return r.State
	}
	return r.State + ", break glass: " + r.FollowUp
}

// followUpLine describes a break-glass grant's follow-up review at now.
func followUpLine(r *api.Request, now time.Time) string {
	switch {
	case r.FollowUp != ca.FollowUpNeedsReview:
		return fmt.Sprintf("granted without an approver; follow-up: %s (%s)", strings.ReplaceAll(r.FollowUp, "_", " "), fmtTime(r.FollowedUpAt))
	case r.ReviewDueAt != nil && !now.Before(*r.ReviewDueAt):
		return fmt.Sprintf("granted without an approver; follow-up review OVERDUE since %s (no new break glass until it is reviewed)", fmtTime(r.ReviewDueAt))
	default:
		return fmt.Sprintf("granted without an approver; follow-up review due by %s", fmtTime(r.ReviewDueAt))
	}
}
