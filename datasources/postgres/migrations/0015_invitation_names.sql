-- The invitee's name, when the inviter gave one (a CSV import's name column, or inviteMembers):
-- the mail greets them by it, and an invitee without an account may accept without typing it.

ALTER TABLE invitations
    ADD COLUMN name text NOT NULL DEFAULT '' CHECK (char_length(name) <= 200);
