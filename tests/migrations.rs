//! Runs every migration up, down and up again through `understudy migrate`
//! against real PostgreSQL, in a database of the test's own.

mod common;

use std::process::Command;

const TABLES: [&str; 5] = [
    "log_events",
    "consumer_offsets",
    "leader_fence",
    "failover_events",
    "dead_letters",
];

/// Every migration in `migrations/`: one per table, and the sink's insert function.
fn migration_count() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations directory")
        .count()
}

async fn insert_function_exists(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT COUNT(*) FROM pg_proc WHERE proname = 'understudy_try_insert_events'",
            &[],
        )
        .await
        .expect("pg_proc")
        .get::<_, i64>(0)
        == 1
}

fn migrate(url: &str, direction: &str) -> String {
    // The owner's password through the environment: argv is public (`ps`).
    let output = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["migrate", direction])
        .env("UNDERSTUDY_POSTGRES__URL", url)
        .env_remove("UNDERSTUDY_POSTGRES__MIGRATIONS_URL")
        .output()
        .expect("run understudy migrate");
    assert!(
        output.status.success(),
        "migrate {direction} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn existing_tables(client: &tokio_postgres::Client) -> Vec<String> {
    let rows = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name = ANY($1) ORDER BY table_name",
            &[&TABLES.to_vec()],
        )
        .await
        .expect("list tables");
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test]
async fn every_migration_goes_up_down_and_up_again() {
    let database = common::unique("migrations").replace('-', "_");
    let admin = common::pg_connect(&common::postgres_url()).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .expect("create database");
    let owner = common::postgres_url();
    let (server, _) = owner.rsplit_once('/').expect("a database in the url");
    let url = format!("{server}/{database}");

    let applied = migrate(&url, "up");
    assert_eq!(applied.lines().count(), migration_count(), "{applied}");
    let client = common::pg_connect(&url).await;
    let mut expected: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    expected.sort();
    assert_eq!(existing_tables(&client).await, expected);
    assert!(insert_function_exists(&client).await);
    // The seed's duplicate check, verbatim.
    let duplicates = client
        .query(
            "SELECT message_id, COUNT(*) FROM log_events GROUP BY message_id HAVING COUNT(*) > 1;",
            &[],
        )
        .await
        .expect("seed duplicate query");
    assert!(duplicates.is_empty());
    assert_eq!(migrate(&url, "up").trim(), "nothing to do");

    let reverted = migrate(&url, "down-all");
    assert_eq!(reverted.lines().count(), migration_count(), "{reverted}");
    assert!(existing_tables(&client).await.is_empty());
    assert!(!insert_function_exists(&client).await);

    migrate(&url, "up");
    assert_eq!(existing_tables(&client).await, expected);
    let status = migrate(&url, "status");
    assert_eq!(status.lines().count(), migration_count(), "{status}");

    drop(client);
    admin
        .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .await
        .expect("drop database");
}
