-- The database-enforced fence: every sink transaction first raises this row to
-- its own epoch, and the update matches zero rows when a newer leader has already
-- raised it. The row lock it takes also serialises commits of competing leaders.
CREATE TABLE leader_fence (
    cluster    TEXT PRIMARY KEY,
    epoch      BIGINT NOT NULL CHECK (epoch >= 0),
    holder     TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
