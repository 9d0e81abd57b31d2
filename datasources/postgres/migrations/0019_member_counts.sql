-- How many members each organization has, kept as it changes, so that a member list's
-- totalCount costs the same for 5 members as for 50,000 (counting 5,000 index entries cost
-- about 0.3 ms of every members page; organizations.member_count reads this instead).
--
-- A single counter row per organization would make every membership change in an organization
-- wait for the one before it to commit, and could deadlock against the event log's advisory
-- lock taken in another order. So each statement that changes memberships adds a row of its
-- own (no conflict, no wait) and the count is the sum of an organization's rows. Once an
-- organization has more than 32 rows, the statement that added the last one folds them into
-- one: it takes only rows nobody else holds (SKIP LOCKED), so folding never waits either, and
-- each fold replaces exactly the rows it deleted with their sum, in the same transaction as the
-- change itself. Every snapshot therefore sums to that snapshot's count(*). (The gateway's
-- transactions are READ COMMITTED; one at REPEATABLE READ that folds rows a concurrent fold
-- already replaced gets a serialization error, to be retried like any other at that level.)
CREATE TABLE member_count_deltas (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    delta            integer NOT NULL
);
CREATE INDEX member_count_deltas_by_organization ON member_count_deltas (organization_id) INCLUDE (delta);

CREATE FUNCTION fold_member_counts(organizations uuid[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  org uuid;
BEGIN
  FOREACH org IN ARRAY organizations LOOP
    IF (SELECT count(*) FROM (SELECT 1 FROM member_count_deltas WHERE organization_id = org LIMIT 33) AS r) > 32 THEN
      WITH gone AS (
        DELETE FROM member_count_deltas WHERE id IN (
          SELECT id FROM member_count_deltas WHERE organization_id = org FOR UPDATE SKIP LOCKED)
        RETURNING delta)
      INSERT INTO member_count_deltas (organization_id, delta)
      SELECT org, sum(delta) FROM gone HAVING sum(delta) <> 0;
    END IF;
  END LOOP;
END $$;

-- The rows a statement took out count -1 in their organization, the rows it put in +1 (an
-- UPDATE moving a member does both; one changing a role adds nothing). Each branch names only
-- the transition tables its kind of statement has: PL/pgSQL plans a statement when it first
-- runs. An organization being deleted (its memberships go by cascade) gets no rows.
CREATE FUNCTION count_member_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  orgs uuid[];
  deltas integer[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(organization_id), array_agg(n) INTO orgs, deltas
    FROM (SELECT organization_id, count(*)::integer AS n FROM new_rows GROUP BY organization_id) AS c;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(organization_id), array_agg(n) INTO orgs, deltas
    FROM (SELECT organization_id, -count(*)::integer AS n FROM old_rows GROUP BY organization_id) AS c;
  ELSE
    SELECT array_agg(organization_id), array_agg(n) INTO orgs, deltas
    FROM (SELECT organization_id, sum(d)::integer AS n
          FROM (SELECT organization_id, 1 AS d FROM new_rows
                UNION ALL SELECT organization_id, -1 FROM old_rows) AS u
          GROUP BY organization_id HAVING sum(d) <> 0) AS c;
  END IF;
  IF orgs IS NULL THEN
    RETURN NULL;
  END IF;
  WITH added AS (
    INSERT INTO member_count_deltas (organization_id, delta)
    SELECT c.o, c.n FROM unnest(orgs, deltas) AS c(o, n)
    WHERE EXISTS (SELECT 1 FROM organizations WHERE id = c.o)
    RETURNING organization_id)
  SELECT array_agg(organization_id) INTO orgs FROM added;
  IF orgs IS NOT NULL THEN
    PERFORM fold_member_counts(orgs);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER count_members_added AFTER INSERT ON memberships
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_member_changes();
CREATE TRIGGER count_members_removed AFTER DELETE ON memberships
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_member_changes();
CREATE TRIGGER count_members_moved AFTER UPDATE ON memberships
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_member_changes();

CREATE FUNCTION forget_member_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM member_count_deltas;
  ELSE
    DELETE FROM member_count_deltas WHERE organization_id IN (SELECT id FROM old_rows);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER forget_member_counts AFTER DELETE ON organizations
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION forget_member_counts();
CREATE TRIGGER forget_member_counts AFTER TRUNCATE ON memberships
  FOR EACH STATEMENT EXECUTE FUNCTION forget_member_counts();

INSERT INTO member_count_deltas (organization_id, delta)
SELECT organization_id, count(*) FROM memberships GROUP BY organization_id;
