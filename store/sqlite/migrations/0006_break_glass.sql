-- Break-glass grants (SPEC section 4c). A break-glass request is created
-- approved, without an approver; its follow-up review is recorded here:
-- needs_review until an approver of the group reviews it, then justified or
-- not_justified. Every other request keeps break_glass 0 and follow_up ''
-- (and so the row digest it had before this migration: the digest leaves
-- these columns out while they hold their defaults, see store/sqlite/bind.go).
ALTER TABLE requests ADD COLUMN break_glass INTEGER NOT NULL DEFAULT 0 CHECK (break_glass IN (0, 1));
ALTER TABLE requests ADD COLUMN follow_up TEXT NOT NULL DEFAULT '' CHECK (follow_up IN ('', 'needs_review', 'justified', 'not_justified'));
ALTER TABLE requests ADD COLUMN review_due_at INTEGER;
ALTER TABLE requests ADD COLUMN followed_up_at INTEGER;

-- The overdue check at every break glass, the reviewable listing and
-- /metrics look only at break-glass rows.
CREATE INDEX requests_break_glass ON requests (requester, follow_up) WHERE break_glass = 1;
