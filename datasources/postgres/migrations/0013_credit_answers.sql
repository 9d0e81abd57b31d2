-- Credit requests answered (issue 19): an OWNER or ADMIN approves a request (setting the
-- requester's credit access) or declines it with a note; a request is answered once.

ALTER TABLE credit_requests
    ADD COLUMN outcome text CHECK (outcome IN ('APPROVED', 'DECLINED')),
    -- The answer's note for the requester (a decline's reason); empty for none.
    ADD COLUMN answer_note text NOT NULL DEFAULT '',
    -- Who answered; NULL once that account is deleted (the outcome stays).
    ADD COLUMN answered_by uuid REFERENCES accounts (id) ON DELETE SET NULL;

-- Requests answered before answers were recorded (none in the product; a hand-edited row) count
-- as approved: someone acted on them.
UPDATE credit_requests SET outcome = 'APPROVED' WHERE resolved_at IS NOT NULL;

ALTER TABLE credit_requests
    ADD CONSTRAINT credit_requests_answered CHECK ((outcome IS NULL) = (resolved_at IS NULL));

-- A member's own requests, newest first (`Account.creditRequests`).
CREATE INDEX credit_requests_by_account ON credit_requests (account_id, created_at DESC, id DESC);
