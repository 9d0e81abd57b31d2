-- The member list is ordered by email. Each membership now carries its account's email, kept
-- in step by the triggers below, so an organization's first page is read from an index in
-- email order instead of sorting every member first (10 ms for 5,000 members, 0.3 for 30).

ALTER TABLE memberships ADD COLUMN email text;
UPDATE memberships m SET email = a.email FROM accounts a WHERE a.id = m.account_id;
ALTER TABLE memberships ALTER COLUMN email SET NOT NULL;
CREATE INDEX memberships_by_email ON memberships (organization_id, email, account_id);
-- Pending invitations join the same list; accepted and revoked ones never show in it.
CREATE INDEX invitations_by_email ON invitations (organization_id, email, id)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE FUNCTION membership_takes_account_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.email := (SELECT email FROM accounts WHERE id = NEW.account_id);
    RETURN NEW;
END $$;
CREATE TRIGGER membership_email BEFORE INSERT OR UPDATE OF account_id, email ON memberships
    FOR EACH ROW EXECUTE FUNCTION membership_takes_account_email();

CREATE FUNCTION account_email_to_membership() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE memberships SET email = NEW.email WHERE account_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER account_email_to_membership AFTER UPDATE OF email ON accounts
    FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email) EXECUTE FUNCTION account_email_to_membership();
