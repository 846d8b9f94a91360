-- Break-glass grants (SPEC section 4c), as the SQLite ledger's migration
-- 0006: a break-glass request is created approved, without an approver; its
-- follow-up review is recorded here: needs_review until an approver of the
-- group reviews it, then justified or not_justified. Every other request
-- keeps break_glass false and follow_up '' (and so its row digest: the
-- digest leaves these columns out while they hold their defaults, see
-- store/rowdigest.go).
ALTER TABLE requests ADD COLUMN break_glass BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE requests ADD COLUMN follow_up TEXT NOT NULL DEFAULT '' CHECK (follow_up IN ('', 'needs_review', 'justified', 'not_justified'));
ALTER TABLE requests ADD COLUMN review_due_at BIGINT;
ALTER TABLE requests ADD COLUMN followed_up_at BIGINT;

-- The overdue check at every break glass, the reviewable listing and
-- /metrics look only at break-glass rows.
CREATE INDEX requests_break_glass ON requests (requester, follow_up) WHERE break_glass;
