-- What an account has used of its organization's credits (`planning.sources.CREDIT_ACCESS`,
-- on every member the members page and the dashboard list) summed from the index alone: with
-- the organization and the amount in it, PostgreSQL reads an account's uses there without
-- visiting the table (members page of 25: 560 -> 517 us of PostgreSQL CPU, the page's 25
-- accounts having 10 uses each; the saving grows with the uses). It serves every lookup by
-- account the old index did (only the sum and the accounts' cascade read by account), which it
-- replaces.
CREATE INDEX credit_usage_by_account_organization ON credit_usage (account_id, organization_id) INCLUDE (amount);
DROP INDEX credit_usage_by_account;
