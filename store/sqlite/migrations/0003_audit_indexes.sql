-- Indexes for the audit filters that 0001 did not cover.
--
-- --valid-at T ("who could reach G at T") is valid_after <= T < valid_before.
-- The store bounds it below by the longest certificate lifetime in the
-- ledger, valid_after > T - max(valid_before - valid_after), which the
-- expression index answers in one lookup; the search is then a short range
-- of certificates_by_valid_after instead of a scan of every certificate
-- issued after T.
CREATE INDEX certificates_by_valid_after ON certificates (valid_after);
CREATE INDEX certificates_by_lifetime ON certificates (valid_before - valid_after);
