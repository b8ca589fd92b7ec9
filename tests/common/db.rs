//! The databases a store test runs on: always a fresh in-memory SQLite; and a fresh PostgreSQL
//! database when `TEST_DATABASE_URL` names a server (CI sets it). Each PostgreSQL test gets its
//! own database, created here and named uniquely, so tests run in parallel without sharing rows.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

pub const SQLITE_MEMORY: &str = "sqlite::memory:";

/// `(engine, url)` for each database to test on. Without `TEST_DATABASE_URL` it prints a
/// "skipped" line for PostgreSQL; with it set, an unreachable server fails the test rather than
/// skipping it.
pub async fn databases() -> Vec<(&'static str, String)> {
    let mut out = vec![("sqlite", SQLITE_MEMORY.to_string())];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => out.push(("postgres", fresh_postgres(&url).await)),
        _ => eprintln!(
            "skipped: no PostgreSQL at TEST_DATABASE_URL (unset); this test ran on SQLite only"
        ),
    }
    out
}

pub async fn fresh_postgres(url: &str) -> String {
    let options = PgConnectOptions::from_str(url).expect("TEST_DATABASE_URL is a PostgreSQL URL");
    let mut admin = options
        .connect()
        .await
        .unwrap_or_else(|e| panic!("no PostgreSQL at TEST_DATABASE_URL ({url}): {e}"));
    let name = format!("gw_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("creating a test database");
    admin.close().await.ok();
    // Same server and credentials, the new database.
    let base = url.split('?').next().unwrap_or(url);
    let without_db = base.rsplit_once('/').map(|(head, _)| head).unwrap_or(base);
    format!("{without_db}/{name}")
}
