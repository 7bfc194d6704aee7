//! PostgreSQL: a connection pool, migrations that several processes may start
//! at once, and the write path: each write in a plain transaction of its own.
//!
//! There is no global lock. Writes of one run wait for each other on that run's
//! row (`SELECT … FOR UPDATE`), claims of one script on that script's advisory
//! lock, and every writer that appends to the audit chain on its head row, from
//! that append to its commit (see `audit.rs`). So several `execgov serve`
//! processes share one database without taking turns.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection as _, PgConnection};

use super::StoreError;
use super::answer::Answer;
use super::audit_key::AuditKey;
use super::ops::{Durability, Write, apply};
use super::sql::{Row, Tx, TxConn, Value, pg_query, pg_rows};

/// How long a pooled connection may sit idle before it is checked on acquire.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The pool, and the one way to write through it.
#[derive(Debug, Clone)]
pub(super) struct Postgres {
    pool: PgPool,
}

impl Postgres {
    /// Connects and brings the schema up to date. Processes starting together
    /// migrate one after another: each takes a session lock of the schema
    /// (`pg_advisory_lock`) before it looks at what is applied.
    pub(super) async fn connect(url: &str) -> Result<Postgres, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A connection used within the last second is taken as it is; one
            // idle longer is pinged first (sqlx pings every time by default:
            // one more round trip per query).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_AFTER_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        let mut conn = pool.acquire().await?;
        let lock =
            "SELECT pg_advisory_lock(hashtextextended('execgov.migrate:' || current_schema(), 0))";
        sqlx::query(lock).execute(&mut *conn).await?;
        let migrated = MIGRATIONS.run(&mut *conn).await;
        let unlock = "SELECT pg_advisory_unlock(hashtextextended('execgov.migrate:' || current_schema(), 0))";
        sqlx::query(unlock).execute(&mut *conn).await?;
        migrated?;
        Ok(Postgres { pool })
    }

    /// Runs `write` in a transaction of its own and commits it with `durability`.
    pub(super) async fn write(
        &self,
        write: Write,
        durability: Durability,
        key: Option<Arc<AuditKey>>,
    ) -> Result<Answer, StoreError> {
        let mut conn = self.pool.acquire().await?;
        // Bookkeeping commits without waiting for the WAL flush; the setting
        // goes with the `BEGIN` (one round trip).
        let mut tx = match durability {
            Durability::Synced => conn.begin().await?,
            Durability::Relaxed => {
                conn.begin_with("BEGIN; SET LOCAL synchronous_commit = off")
                    .await?
            }
        };
        let answer = {
            let mut t = Tx::new(TxConn::Postgres(&mut tx)).with_key(key);
            apply(&mut t, write).await?
        };
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn rows(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        pg_rows(pg_query(sql, args).fetch_all(&self.pool).await?)
    }

    pub(super) async fn raw(&self, sql: &str) -> Result<(), StoreError> {
        let mut conn: sqlx::pool::PoolConnection<sqlx::Postgres> = self.pool.acquire().await?;
        let c: &mut PgConnection = &mut conn;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(c)
            .await?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}
