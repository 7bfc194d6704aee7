//! The store's one way to talk SQL to either backend.
//!
//! Every query is written once, with `$n` placeholders (both backends take
//! them), and bound with [`Value`]s. What comes back is a [`Row`] of
//! [`Datum`]s read by column name, so decoding a row is written once too
//! ([`Column`]). [`Tx`] is a transaction on either backend; the write
//! operations in `ops.rs` are written against it, never against a driver.
//!
//! SQLite goes through `rusqlite`, PostgreSQL through `sqlx`. A SQLite
//! statement never waits (the writer thread owns its connection, readers
//! their own), so on SQLite the futures below are ready at their first poll.

use std::sync::Arc;

use rusqlite::types::ValueRef;
use sqlx::postgres::PgRow;
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

use super::StoreError;

/// Which database a connection talks to, where the SQL has to differ
/// (`FOR UPDATE` exists only on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A value bound to a `$n` parameter. Typed even when NULL, because
/// PostgreSQL needs every parameter's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(Some(v.to_string()))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(Some(v.clone()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(Some(v))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        Value::Text(v)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Value {
        Value::Text(v.map(str::to_string))
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Value {
        Value::Text(v.clone())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}

/// `args![a, b, …]`: the values bound to `$1`, `$2`, ….
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        vec![$($crate::store::sql::Value::from($v)),*]
    };
}
pub(crate) use args;

/// One value as a backend returned it.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// One result row, owned, its values read by column name.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Datum>,
}

impl Row {
    /// The value of column `name`, decoded as `T`.
    pub fn get<T: Column>(&self, name: &str) -> Result<T, StoreError> {
        let datum = self
            .names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.values[i])
            .ok_or_else(|| StoreError::Corrupt(format!("the query returned no column `{name}`")))?;
        T::from_datum(datum).map_err(|why| StoreError::Corrupt(format!("column `{name}`: {why}")))
    }

    /// The first column, decoded as `T` (`SELECT COUNT(*)`, `RETURNING id`).
    pub fn first<T: Column>(&self) -> Result<T, StoreError> {
        let datum = self
            .values
            .first()
            .ok_or_else(|| StoreError::Corrupt("the query returned no column".into()))?;
        T::from_datum(datum).map_err(|why| StoreError::Corrupt(format!("first column: {why}")))
    }
}

/// A Rust type stored in one column: how it is bound and how it is read back.
/// JSON-shaped types are TEXT holding JSON (see [`json_column`]); nothing else
/// in the store deals with JSON.
pub trait Column: Sized {
    /// What `None` of an `Option` of this type binds as.
    const NULL: Value = Value::Text(None);
    fn to_value(&self) -> Value;
    /// `Err` says what was wrong with the stored value.
    fn from_datum(d: &Datum) -> Result<Self, String>;
}

impl Column for i64 {
    const NULL: Value = Value::Int(None);
    fn to_value(&self) -> Value {
        Value::Int(Some(*self))
    }
    fn from_datum(d: &Datum) -> Result<Self, String> {
        match d {
            Datum::Int(v) => Ok(*v),
            Datum::Bool(b) => Ok(i64::from(*b)),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

impl Column for String {
    fn to_value(&self) -> Value {
        Value::Text(Some(self.clone()))
    }
    fn from_datum(d: &Datum) -> Result<Self, String> {
        match d {
            Datum::Text(v) => Ok(v.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl Column for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
    fn from_datum(d: &Datum) -> Result<Self, String> {
        match d {
            Datum::Bytes(v) => Ok(v.clone()),
            Datum::Text(t) => Ok(t.clone().into_bytes()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl Column for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_datum(d: &Datum) -> Result<Self, String> {
        match d {
            Datum::Bool(v) => Ok(*v),
            // SQLite has no boolean: TRUE is 1.
            Datum::Int(v) => Ok(*v != 0),
            other => Err(format!("expected a boolean, found {other:?}")),
        }
    }
}

impl<T: Column> Column for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => T::NULL,
        }
    }
    fn from_datum(d: &Datum) -> Result<Self, String> {
        match d {
            Datum::Null => Ok(None),
            d => T::from_datum(d).map(Some),
        }
    }
}

/// Implements [`Column`] for types stored as JSON text (`serde`).
macro_rules! json_column {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::store::sql::Column for $t {
            fn to_value(&self) -> $crate::store::sql::Value {
                $crate::store::sql::Value::Text(Some(
                    serde_json::to_string(self).expect("a JSON column serializes"),
                ))
            }
            fn from_datum(d: &$crate::store::sql::Datum) -> Result<Self, String> {
                match d {
                    $crate::store::sql::Datum::Text(t) => {
                        serde_json::from_str(t).map_err(|e| format!("not the JSON expected: {e}"))
                    }
                    other => Err(format!("expected JSON text, found {other:?}")),
                }
            }
        }
    )*};
}

/// Implements [`Column`] for types stored as their name (`as_str` / `parse`).
macro_rules! name_column {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::store::sql::Column for $t {
            fn to_value(&self) -> $crate::store::sql::Value {
                $crate::store::sql::Value::Text(Some(self.as_str().to_string()))
            }
            fn from_datum(d: &$crate::store::sql::Datum) -> Result<Self, String> {
                match d {
                    $crate::store::sql::Datum::Text(t) => <$t>::parse(t)
                        .ok_or_else(|| format!("unknown {} `{t}`", stringify!($t))),
                    other => Err(format!("expected text, found {other:?}")),
                }
            }
        }
    )*};
}

name_column!(crate::types::RunState, crate::types::Risk);

impl Column for crate::types::PersonId {
    fn to_value(&self) -> Value {
        Value::Text(Some(self.0.clone()))
    }
    fn from_datum(d: &Datum) -> Result<Self, String> {
        String::from_datum(d).map(crate::types::PersonId)
    }
}

impl Column for crate::types::RunId {
    const NULL: Value = Value::Int(None);
    fn to_value(&self) -> Value {
        Value::Int(Some(self.0))
    }
    fn from_datum(d: &Datum) -> Result<Self, String> {
        i64::from_datum(d).map(crate::types::RunId)
    }
}

json_column!(
    Vec<String>,
    crate::types::Args,
    crate::types::Place,
    crate::types::Approvers,
    serde_json::Value,
);

/// A transaction on either backend: what every write operation runs in.
/// The audit entries an operation appends are queued here and written
/// together at its end (see `audit.rs`), so on PostgreSQL the chain's head is
/// locked only from that append until the commit.
pub struct Tx<'a> {
    pub(super) conn: TxConn<'a>,
    pub(super) audit: Vec<super::audit::NewEntry>,
    /// The audit key the entries are hashed with (`None`: plain SHA-256, for a
    /// store that was given no key).
    pub(super) key: Option<std::sync::Arc<super::audit_key::AuditKey>>,
}

pub(super) enum TxConn<'a> {
    Sqlite(&'a mut rusqlite::Connection),
    Postgres(&'a mut sqlx::PgConnection),
}

impl<'a> Tx<'a> {
    pub(super) fn new(conn: TxConn<'a>) -> Tx<'a> {
        Tx {
            conn,
            audit: Vec::new(),
            key: None,
        }
    }

    /// The same transaction, hashing its audit entries with `key`.
    pub(super) fn with_key(
        mut self,
        key: Option<std::sync::Arc<super::audit_key::AuditKey>>,
    ) -> Self {
        self.key = key;
        self
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            TxConn::Sqlite(_) => Backend::Sqlite,
            TxConn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs a statement; how many rows it changed.
    pub async fn execute(&mut self, sql: &str, args: Vec<Value>) -> Result<u64, StoreError> {
        match &mut self.conn {
            TxConn::Sqlite(c) => Ok(sqlite_statement(c, sql, &args)?.raw_execute()? as u64),
            TxConn::Postgres(c) => {
                let done = pg_query(sql, args).execute(&mut **c).await?;
                Ok(done.rows_affected())
            }
        }
    }

    pub async fn fetch_all(&mut self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        match &mut self.conn {
            TxConn::Sqlite(c) => sqlite_rows(c, sql, &args, usize::MAX),
            TxConn::Postgres(c) => pg_rows(pg_query(sql, args).fetch_all(&mut **c).await?),
        }
    }

    pub async fn fetch_optional(
        &mut self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Option<Row>, StoreError> {
        match &mut self.conn {
            TxConn::Sqlite(c) => Ok(sqlite_rows(c, sql, &args, 1)?.pop()),
            TxConn::Postgres(c) => {
                let row = pg_query(sql, args).fetch_optional(&mut **c).await?;
                Ok(pg_rows(row.into_iter().collect())?.pop())
            }
        }
    }

    /// Runs several statements separated by `;`, without parameters (tools and tests).
    pub async fn execute_script(&mut self, sql: &str) -> Result<(), StoreError> {
        match &mut self.conn {
            TxConn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            TxConn::Postgres(c) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut **c)
                    .await?;
                Ok(())
            }
        }
    }

    pub async fn fetch_one(&mut self, sql: &str, args: Vec<Value>) -> Result<Row, StoreError> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from `{sql}`")))
    }
}

/// `sql` prepared (from the connection's cache) with `args[n-1]` bound to
/// each `$n`. Bound by name: SQLite numbers `$n` parameters in their order of
/// first appearance, not by `n`.
pub(super) fn sqlite_statement<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Value],
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    for index in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(index).unwrap_or("?");
        let n = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=args.len()).contains(n))
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_string()))?;
        match &args[n - 1] {
            Value::Int(v) => stmt.raw_bind_parameter(index, v)?,
            Value::Text(v) => stmt.raw_bind_parameter(index, v)?,
            Value::Bool(v) => stmt.raw_bind_parameter(index, v)?,
            Value::Bytes(v) => stmt.raw_bind_parameter(index, v)?,
        }
    }
    Ok(stmt)
}

/// At most `limit` rows of `sql`.
pub(super) fn sqlite_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Value],
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    let mut stmt = sqlite_statement(conn, sql, args)?;
    let names: Arc<[String]> = stmt.column_names().into_iter().map(String::from).collect();
    let width = names.len();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(r) = rows.next()? else { break };
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match r.get_ref(i)? {
                ValueRef::Null => Datum::Null,
                ValueRef::Integer(v) => Datum::Int(v),
                ValueRef::Real(v) => Datum::Real(v),
                ValueRef::Text(t) => Datum::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Datum::Bytes(b.to_vec()),
            });
        }
        out.push(Row {
            names: names.clone(),
            values,
        });
    }
    Ok(out)
}

type PgQuery = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

pub(super) fn pg_query(sql: &str, args: Vec<Value>) -> PgQuery {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for a in args {
        q = match a {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Bool(v) => q.bind(v),
            Value::Bytes(v) => q.bind(v),
        };
    }
    q
}

pub(super) fn pg_rows(rows: Vec<PgRow>) -> Result<Vec<Row>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    rows.iter()
        .map(|r| {
            let values = (0..names.len())
                .map(|i| pg_datum(r, i))
                .collect::<Result<_, _>>()?;
            Ok(Row {
                names: names.clone(),
                values,
            })
        })
        .collect()
}

fn pg_datum(r: &PgRow, i: usize) -> Result<Datum, sqlx::Error> {
    let raw = r.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Datum::Null);
    }
    let kind = raw.type_info().name().to_string();
    Ok(match kind.as_str() {
        "INT8" => Datum::Int(r.try_get::<i64, _>(i)?),
        "INT4" => Datum::Int(r.try_get::<i32, _>(i)?.into()),
        "INT2" => Datum::Int(r.try_get::<i16, _>(i)?.into()),
        "BOOL" => Datum::Bool(r.try_get(i)?),
        "FLOAT8" => Datum::Real(r.try_get(i)?),
        "FLOAT4" => Datum::Real(r.try_get::<f32, _>(i)?.into()),
        "BYTEA" => Datum::Bytes(r.try_get(i)?),
        _ => Datum::Text(r.try_get(i)?),
    })
}
