DROP FUNCTION understudy_try_insert_events(
    UUID[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[], TEXT[], TEXT[], INTEGER[], BIGINT[], BIGINT[], TEXT[]
);
