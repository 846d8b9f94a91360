package ca

// Kinds of Notification.
const (
	NotifyCreated  = "request.created"
	NotifyReviewed = "request.reviewed" // APPROVE short of the threshold, REQUEST_CHANGES or COMMENT
	NotifyApproved = "request.approved" // the review that satisfied the policy
	NotifyDenied   = "request.denied"
	NotifyExpired  = "request.expired"
	// NotifyBreakGlass: a break-glass grant started; every approver of the
	// group is told at once (Urgent).
	NotifyBreakGlass = "grant.break_glass"
	// NotifyNotJustified: an approver found a break-glass grant not
	// justified; its certificates were revoked (Urgent).
	NotifyNotJustified = "grant.not_justified"
	// NotifyJustified: an approver found a break-glass grant justified.
	NotifyJustified = "grant.justified"
)

// Notification is one committed change of a request, as the approval
// service tells it to a notifier (approval.Notifier; the webhook in
// approval/notify). It lives here, with the request it carries, so a
// notifier needs only this package. It carries no credentials.
type Notification struct {
	Kind    string  // one of the Notify* kinds
	Actor   string  // who caused it: a login, or SystemActor for expiry
	Request Request // the request as committed (a copy)
	// Review is the review that caused a reviewed, approved or denied
	// notification.
	Review *Review
	// Approvers are the request's approving reviewers by the review rules
	// (approval.TallyReviews), in approval order.
	Approvers         []string
	ApprovalsRequired int      // of the request's host group
	ApproverTeams     []string // of the request's host group
	// Urgent marks what needs an approver's attention now (a break-glass
	// grant, one found not justified): notifiers send it at high urgency.
	Urgent bool
	// Revoked are the serials a not-justified follow-up revoked.
	Revoked []uint64
}
