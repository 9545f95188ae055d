//! The thin connection abstraction the shared logic (`db::shared`) runs its statements
//! through: `Exec` (execute, query) over dialect-neutral [`Value`]s and [`Row`]s, implemented
//! once per backend (`SqliteExec`, `PgExec`).
//!
//! Why async for both: tokio-postgres is async and rusqlite is not. The shared logic is written
//! as `async fn`s generic over `Exec`; the PostgreSQL executor really awaits the server, the
//! SQLite executor answers at once (its futures are always ready), so the SQLite store polls the
//! shared logic to completion on its blocking thread (`run_ready`) inside its own transaction
//! and group commit. Each backend keeps its concurrency strategy; only the SQL text, the row
//! mapping and the decisions are shared.

use std::future::Future;

use super::dialect::Dialect;
use super::model::{DbError, DbResult};

/// A value passed to or read from SQL, whatever the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer (SQLite INTEGER, PostgreSQL INT2/INT4/INT8).
    Int(i64),
    /// A boolean (an integer 0/1 on SQLite).
    Bool(bool),
    /// Text.
    Text(String),
    /// A float.
    Real(f64),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        v.as_deref().into()
    }
}

/// The parameters of a statement: `args![a, b]` is `&[Value::from(a), Value::from(b)]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::db::exec::Value::from($v)),*]
    };
}
pub(crate) use args;

/// Reads a [`Value`] as a Rust type (integers and booleans convert into each other, as SQLite
/// stores booleans as integers).
pub trait FromValue: Sized {
    /// `None` when the value is of another type.
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Real(f) => Some(*f),
            #[allow(
                clippy::cast_precision_loss,
                reason = "SQLite keeps 1.0 as REAL, small ints read back as they were"
            )]
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as `T`; [`DbError::Corrupt`] when it is missing or of another type.
    pub fn get<T: FromValue>(&self, i: usize) -> DbResult<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| DbError::Corrupt(format!("no column {i} in a row")))?;
        T::from_value(v).ok_or_else(|| {
            DbError::Corrupt(format!(
                "column {i} holds {v:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A connection or transaction the shared logic runs statements through. Statements are written
/// in the shared syntax (see [`Dialect::sql`]); the executor translates them.
pub(crate) trait Exec {
    /// Which database this is.
    fn dialect(&self) -> Dialect;

    /// Runs a statement; the rows it changed.
    async fn execute(&self, sql: &str, params: &[Value]) -> DbResult<u64>;

    /// Runs a query; all its rows.
    async fn query(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>>;

    /// Serialises numbering feed changes until the transaction ends, so that their sequence
    /// order is their commit order (PostgreSQL's advisory lock; SQLite has one writer anyway).
    async fn lock_changes(&self) -> DbResult<()>;

    /// Runs several statements (no parameters, no rows): migrations and backfills.
    async fn batch(&self, sql: &str) -> DbResult<()>;

    /// The first row, if any.
    async fn query_opt(&self, sql: &str, params: &[Value]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// The first row; [`DbError::Corrupt`] when there is none.
    async fn query_one(&self, sql: &str, params: &[Value]) -> DbResult<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("no row from {sql}")))
    }
}

/// Polls a future that never waits (the shared logic over the SQLite executor) to its end.
pub fn run_ready<T>(fut: impl Future<Output = DbResult<T>>) -> DbResult<T> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => Err(DbError::Internal(
            "a SQLite statement future was not ready (the SQLite executor never waits)",
        )),
    }
}
