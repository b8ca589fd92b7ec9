//! The databases a store test runs on: always a fresh in-memory SQLite; and a fresh PostgreSQL
//! database when `TEST_DATABASE_URL` names a server (CI sets it). Each PostgreSQL test gets its
//! own database, created here and named uniquely, so tests run in parallel without sharing rows.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

pub const SQLITE_MEMORY: &str = "sqlite::memory:";

/// A fresh PostgreSQL database when `TEST_DATABASE_URL` names a server; None (saying "skipped")
/// without it.
pub async fn postgres() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(fresh_postgres(&url).await),
        _ => {
            eprintln!("skipped: no PostgreSQL at TEST_DATABASE_URL (unset)");
            None
        }
    }
}

/// Defines a test per database, as a module `NAME` holding `sqlite` and `postgres` (skipped,
/// saying so, without `TEST_DATABASE_URL`): separate tests, so they report apart and run in
/// parallel. The body runs with `engine` ("sqlite" / "postgres") and `url` bound. An attribute
/// before the name replaces `#[tokio::test]` (a multi-threaded runtime, say).
#[macro_export]
macro_rules! each_database {
    (#[$test:meta] $name:ident, |$engine:ident, $url:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[$test]
            async fn sqlite() {
                let $engine: &'static str = "sqlite";
                let $url: String = $crate::common::db::SQLITE_MEMORY.to_string();
                $body
            }

            #[$test]
            async fn postgres() {
                let Some(url) = $crate::common::db::postgres().await else {
                    return;
                };
                let $engine: &'static str = "postgres";
                let $url: String = url;
                $body
            }
        }
    };
    ($name:ident, |$engine:ident, $url:ident| $body:block) => {
        $crate::each_database!(
            #[tokio::test]
            $name,
            |$engine, $url| $body
        );
    };
}

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
