//! SQLite's writer connections: one per [`Durability`], each a single
//! connection opened with the store and held for good.
//!
//! Not a sqlx pool: a pool pings a connection each time it lends it out and
//! again, in a spawned task, each time it comes back, and the next writer
//! waits for that second ping. Every hop to a connection's worker thread is a
//! thread wake-up, and these two doubled the cost of a small transaction.
//! Writers take turns at the gate anyway, so a mutex is all the lending needed.
//!
//! Opened with the store, the connection's sqlx worker thread has the
//! scheduling priority of the thread that built the store (the foreground
//! runtime), never that of a background thread (see `app::background_runtime`).
//! A connection whose worker died is dropped and reopened on next use.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::Connection;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteConnection, SqlitePool, SqliteSynchronous};
use tokio::sync::{Mutex, MutexGuard};

use super::StoreError;
use super::gate::{Durability, Turn};

/// The two writer connections.
#[derive(Debug)]
pub(crate) struct SqliteWriters {
    /// `synchronous=FULL`, for foreground turns.
    synced: Writer,
    /// `synchronous=NORMAL`, for background turns.
    written: Writer,
}

#[derive(Debug)]
struct Writer {
    options: SqliteConnectOptions,
    conn: Mutex<Option<SqliteConnection>>,
    closed: AtomicBool,
}

impl Writer {
    async fn open(options: SqliteConnectOptions) -> Result<Writer, StoreError> {
        let conn = SqliteConnection::connect_with(&options).await?;
        Ok(Writer {
            options,
            conn: Mutex::new(Some(conn)),
            closed: AtomicBool::new(false),
        })
    }

    async fn lock(&self) -> Result<WriteConn<'_>, StoreError> {
        let mut conn = self.conn.lock().await;
        if conn.is_none() {
            if self.closed.load(Ordering::Acquire) {
                return Err(StoreError::Db(sqlx::Error::PoolClosed));
            }
            tracing::warn!("reopening a SQLite writer connection whose worker stopped");
            *conn = Some(SqliteConnection::connect_with(&self.options).await?);
        }
        Ok(WriteConn::Held(conn))
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(conn) = self.conn.lock().await.take()
            && let Err(e) = conn.close().await
        {
            tracing::warn!(error = %e, "closing a SQLite writer connection failed");
        }
    }
}

impl SqliteWriters {
    pub(super) async fn open(options: &SqliteConnectOptions) -> Result<SqliteWriters, StoreError> {
        let with = |sync| options.clone().synchronous(sync);
        Ok(SqliteWriters {
            synced: Writer::open(with(SqliteSynchronous::Full)).await?,
            written: Writer::open(with(SqliteSynchronous::Normal)).await?,
        })
    }

    /// The connection for `turn`'s durability, once no one else is using it.
    pub(crate) async fn lock(&self, turn: &Turn<'_>) -> Result<WriteConn<'_>, StoreError> {
        match turn.durability() {
            Durability::Synced => self.synced.lock().await,
            Durability::Written => self.written.lock().await,
        }
    }

    /// The synced connection, outside any turn (raw SQL for tests and tools).
    pub(super) async fn lock_synced(&self) -> Result<WriteConn<'_>, StoreError> {
        self.synced.lock().await
    }

    pub(super) async fn close(&self) {
        self.synced.close().await;
        self.written.close().await;
    }
}

/// A writer connection in use: a held one, or (in-memory database) the pool's.
pub(crate) enum WriteConn<'a> {
    Held(MutexGuard<'a, Option<SqliteConnection>>),
    Pooled(PoolConnection<Sqlite>),
}

impl WriteConn<'_> {
    /// The pool's connection, for an in-memory database.
    pub(crate) async fn pooled(pool: &SqlitePool) -> Result<WriteConn<'static>, StoreError> {
        Ok(WriteConn::Pooled(pool.acquire().await?))
    }

    /// After `error`, drops a held connection whose worker thread is gone, so
    /// the next turn opens a new one instead of failing forever.
    pub(crate) fn forget_if_broken(&mut self, error: &StoreError) {
        if let (WriteConn::Held(conn), StoreError::Db(sqlx::Error::WorkerCrashed)) = (self, error) {
            **conn = None;
        }
    }
}

impl Deref for WriteConn<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            WriteConn::Held(conn) => conn.as_ref().expect("a held writer is open"),
            WriteConn::Pooled(conn) => conn,
        }
    }
}

impl DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            WriteConn::Held(conn) => conn.as_mut().expect("a held writer is open"),
            WriteConn::Pooled(conn) => conn,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::fresh_store;

    /// `PRAGMA synchronous` on the connection a turn writes with: 2 is FULL, 1 NORMAL.
    async fn synchronous_for(store: &crate::store::Store, in_front: bool) -> i64 {
        let turn = if in_front {
            crate::store::foreground(store.gate.turn()).await
        } else {
            store.gate.turn().await
        };
        let writers = store.sqlite_writers.as_ref().expect("a file database");
        let mut conn = writers.lock(&turn).await.unwrap();
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    }

    /// A burst larger than the limit grows the WAL; once it is checkpointed,
    /// the next commit starts the WAL over and cuts the file back to the limit.
    #[tokio::test]
    async fn the_wal_is_cut_back_to_its_limit_after_a_burst() {
        let (store, guard) = fresh_store("sqlite").await;
        let wal = format!("{}-wal", guard.url().trim_start_matches("sqlite://"));
        let limit = crate::store::SQLITE_WAL_LIMIT_BYTES;
        let writers = store.sqlite_writers.as_ref().expect("a file database");
        let mut conn = writers.lock_synced().await.unwrap();
        let burst = limit / (1 << 20) + 8;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE ballast (b BLOB); BEGIN; \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {burst}) \
             INSERT INTO ballast SELECT zeroblob(1048576) FROM n; COMMIT; DELETE FROM ballast;"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(
            grown > limit,
            "the burst grew the WAL past the limit: {grown} bytes"
        );
        // The store's own checkpointer may be folding the WAL at the same time:
        // ask until every frame is in the database.
        let mut folded = false;
        for _ in 0..100 {
            let (busy, log, done): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            if busy == 0 && log == done {
                folded = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(folded, "the WAL was checkpointed in full");
        sqlx::query("INSERT INTO ballast VALUES (x'00')")
            .execute(&mut *conn)
            .await
            .unwrap();
        let after = std::fs::metadata(&wal).unwrap().len();
        assert!(
            after <= limit,
            "the WAL was cut back to at most {limit} bytes, is {after} (was {grown})"
        );
    }

    #[tokio::test]
    async fn foreground_writes_are_synced_to_disk_and_background_ones_are_not() {
        let (store, _guard) = fresh_store("sqlite").await;
        assert_eq!(synchronous_for(&store, true).await, 2, "FULL");
        assert_eq!(synchronous_for(&store, false).await, 1, "NORMAL");
    }
}
