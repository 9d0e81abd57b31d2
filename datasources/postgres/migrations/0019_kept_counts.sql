-- Counts the portal shows on every screen, kept as their rows change instead of counted per
-- request: an organization's members (`member_count_deltas`, for the members list's totalCount)
-- and a license's allocated seats (`seat_count_deltas`, for allocatedCount, availableCount and
-- the seats' totalCount). Counting them cost about 0.3 ms of PostgreSQL per members page of a
-- 5,000-member organization, and a third of the PostgreSQL time of its dashboard (5 licenses of
-- ~4,000 seats each). Read by `organizations.member_count` and `planning.sources.LICENSE_LETS`.
--
-- A single counter row per organization or license would make every change under it wait for
-- the one before to commit, and could deadlock against the event log's advisory lock taken in
-- another order. So each statement that changes the counted rows adds a row of its own per key
-- (no conflict, no wait) and the count is the sum of the key's rows. Once a key has more than
-- 32 rows, the statement that added the last one folds them into one: it takes only rows nobody
-- else holds (SKIP LOCKED), so folding never waits either, and each fold replaces exactly the
-- rows it deleted with their sum, in the same transaction as the change itself. Every snapshot
-- therefore sums to that snapshot's count(*). (The gateway's transactions are READ COMMITTED;
-- one at REPEATABLE READ that folds rows a concurrent fold already replaced gets a
-- serialization error, to be retried like any other at that level.)
CREATE TABLE member_count_deltas (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL,
    delta            integer NOT NULL
);
CREATE INDEX member_count_deltas_by_organization ON member_count_deltas (organization_id) INCLUDE (delta);

CREATE TABLE seat_count_deltas (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    license_id  uuid NOT NULL,
    delta       integer NOT NULL
);
CREATE INDEX seat_count_deltas_by_license ON seat_count_deltas (license_id) INCLUDE (delta);

-- The trigger functions take their table and columns as arguments: (the deltas table, the
-- counted rows' key column, which is also the deltas' key column, the table that key points to).
CREATE FUNCTION fold_counts(deltas text, key_column text, keys uuid[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  k uuid;
  rows_now integer;
BEGIN
  FOREACH k IN ARRAY keys LOOP
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %I WHERE %I = $1 LIMIT 33) AS r', deltas, key_column)
      INTO rows_now USING k;
    IF rows_now > 32 THEN
      EXECUTE format('WITH gone AS (DELETE FROM %1$I WHERE id IN ('
                     '  SELECT id FROM %1$I WHERE %2$I = $1 FOR UPDATE SKIP LOCKED) RETURNING delta)'
                     ' INSERT INTO %1$I (%2$I, delta) SELECT $1, sum(delta) FROM gone HAVING sum(delta) <> 0',
                     deltas, key_column) USING k;
    END IF;
  END LOOP;
END $$;

-- The rows a statement took out count -1 under their key, the rows it put in +1 (an UPDATE
-- moving a row does both; one changing anything else adds nothing). Each branch names only the
-- transition tables its kind of statement has. A key whose row is being deleted (the counted
-- rows go by cascade) gets no rows.
CREATE FUNCTION count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  deltas text := TG_ARGV[0];
  key_column text := TG_ARGV[1];
  parent text := TG_ARGV[2];
  changed uuid[];
  moves text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    moves := format('SELECT %I AS k, count(*)::integer AS n FROM new_rows GROUP BY 1', key_column);
  ELSIF TG_OP = 'DELETE' THEN
    moves := format('SELECT %I AS k, -count(*)::integer AS n FROM old_rows GROUP BY 1', key_column);
  ELSE
    moves := format('SELECT k, sum(d)::integer AS n FROM (SELECT %1$I AS k, 1 AS d FROM new_rows'
                    ' UNION ALL SELECT %1$I, -1 FROM old_rows) AS u GROUP BY k HAVING sum(d) <> 0', key_column);
  END IF;
  EXECUTE format('WITH added AS (INSERT INTO %1$I (%2$I, delta) SELECT c.k, c.n FROM (%3$s) AS c'
                 ' WHERE EXISTS (SELECT 1 FROM %4$I p WHERE p.id = c.k) RETURNING %2$I)'
                 ' SELECT array_agg(%2$I) FROM added', deltas, key_column, moves, parent) INTO changed;
  IF changed IS NOT NULL THEN
    PERFORM fold_counts(deltas, key_column, changed);
  END IF;
  RETURN NULL;
END $$;

-- (the deltas table, its key column): a deleted parent's rows, or all of them on TRUNCATE.
CREATE FUNCTION forget_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    EXECUTE format('DELETE FROM %I', TG_ARGV[0]);
  ELSE
    EXECUTE format('DELETE FROM %I WHERE %I IN (SELECT id FROM old_rows)', TG_ARGV[0], TG_ARGV[1]);
  END IF;
  RETURN NULL;
END $$;

-- The same five triggers for each kept count: (counted table, deltas table, key column, parent table, name).
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT * FROM (VALUES
      ('memberships', 'member_count_deltas', 'organization_id', 'organizations', 'members'),
      ('allocations', 'seat_count_deltas', 'license_id', 'licenses', 'seats')) AS v(counted, deltas, key_column, parent, name)
  LOOP
    EXECUTE format('CREATE TRIGGER %1$I AFTER INSERT ON %2$I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION count_changes(%3$L, %4$L, %5$L)',
                   'count_' || c.name || '_added', c.counted, c.deltas, c.key_column, c.parent);
    EXECUTE format('CREATE TRIGGER %1$I AFTER DELETE ON %2$I REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION count_changes(%3$L, %4$L, %5$L)',
                   'count_' || c.name || '_removed', c.counted, c.deltas, c.key_column, c.parent);
    EXECUTE format('CREATE TRIGGER %1$I AFTER UPDATE ON %2$I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION count_changes(%3$L, %4$L, %5$L)',
                   'count_' || c.name || '_moved', c.counted, c.deltas, c.key_column, c.parent);
    EXECUTE format('CREATE TRIGGER %1$I AFTER DELETE ON %2$I REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION forget_counts(%3$L, %4$L)',
                   'forget_' || c.name || '_counts', c.parent, c.deltas, c.key_column);
    EXECUTE format('CREATE TRIGGER %1$I AFTER TRUNCATE ON %2$I FOR EACH STATEMENT EXECUTE FUNCTION forget_counts(%3$L, %4$L)',
                   'forget_' || c.name || '_counts', c.counted, c.deltas, c.key_column);
    EXECUTE format('INSERT INTO %I (%I, delta) SELECT %2$I, count(*) FROM %3$I GROUP BY 1', c.deltas, c.key_column, c.counted);
  END LOOP;
END $$;
