//! The database: one [`Store`] over SQLite (the embedded default) or PostgreSQL.
//!
//! Every query is written once, in SQL both engines accept (`$1` parameters, double-quoted
//! identifiers, `RETURNING`), and run on whichever pool the URL chose through [`with_pool!`].
//! Typed pools rather than sqlx's `Any` driver keep real timestamp and boolean types, which the
//! better-auth tables shared with other apps need.

pub mod api_keys;
pub mod limit_overrides;
pub mod memories;
pub mod prompts;
pub mod sessions;
pub mod threads;
pub mod usage;
pub mod usage_queries;
pub mod users;
pub mod verification;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::config::DatabaseConfig;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

/// Runs `$body` with `$pool` bound to the store's typed pool, whichever engine it is.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.pool() {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the row (an email or username already taken, say).
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn from_write(error: sqlx::Error) -> Self {
        match error.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(error),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A database failure as the one error type: a 500 whose cause is logged, never shown. (A
/// conflict that a caller means to report, a taken email say, is matched before this.)
impl From<StoreError> for crate::error::GatewayError {
    fn from(error: StoreError) -> Self {
        crate::error::GatewayError::unexpected(crate::error::error_chain(&error))
    }
}

/// One migration and whether it has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// Timestamps are written with millisecond precision so SQLite's text form sorts correctly.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Store {
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Store> {
        let url = config.url.expose();
        let pool = if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let options = SqliteConnectOptions::from_str(url)
                .context("database.url is not a SQLite URL")?
                .create_if_missing(true)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let options = if memory {
                options
            } else {
                if let Some(dir) = options.get_filename().parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                    }
                }
                options.journal_mode(SqliteJournalMode::Wal)
            };
            let mut pool = SqlitePoolOptions::new().max_connections(config.max_connections);
            if memory {
                // An in-memory database lives as long as one connection to it: keep one.
                pool = pool
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            Pool::Sqlite(
                pool.connect_with(options)
                    .await
                    .context("opening the SQLite database")?,
            )
        } else {
            let options =
                PgConnectOptions::from_str(url).context("database.url is not a PostgreSQL URL")?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .context("connecting to PostgreSQL")?,
            )
        };
        Ok(Store { pool })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn engine(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending migration; returns how many were applied.
    pub async fn migrate_up(&self) -> anyhow::Result<usize> {
        let before = self.applied_versions().await?.len();
        with_pool!(self, pool => self.migrator().run(pool).await).context("applying migrations")?;
        Ok(self.applied_versions().await?.len() - before)
    }

    /// Reverts the `steps` most recent migrations; returns the versions reverted.
    pub async fn migrate_down(&self, steps: usize) -> anyhow::Result<Vec<i64>> {
        let mut applied = self.applied_versions().await?;
        applied.sort_unstable();
        let keep = applied.len().saturating_sub(steps);
        let target = if keep == 0 { 0 } else { applied[keep - 1] };
        with_pool!(self, pool => self.migrator().undo(pool, target).await)
            .context("reverting migrations")?;
        Ok(applied[keep..].iter().rev().copied().collect())
    }

    pub async fn migration_status(&self) -> anyhow::Result<Vec<MigrationState>> {
        let applied = self.applied_versions().await?;
        Ok(self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| MigrationState {
                version: m.version,
                description: m.description.to_string(),
                applied: applied.contains(&m.version),
            })
            .collect())
    }

    async fn applied_versions(&self) -> anyhow::Result<Vec<i64>> {
        let versions = with_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            conn.ensure_migrations_table().await?;
            conn.list_applied_migrations().await?
        });
        Ok(versions.into_iter().map(|m| m.version).collect())
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> StoreResult<()> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}
