//! The seam between the two SQL dialects. Shared statements (`db::shared`) are written once,
//! in SQLite's syntax with numbered placeholders (`?1`); [`Dialect::sql`] turns them into
//! PostgreSQL's (`$1`). What differs beyond placeholders (JSON access, a column's type, group
//! functions, row locks) is a [`Dialect`] method, so the statement text around it stays shared.

use std::borrow::Cow;

pub use super::model::DbKind as Dialect;

impl Dialect {
    /// `text` in this dialect. Shared statements use `?N` placeholders, which become `$N` on
    /// PostgreSQL (outside quoted strings, so `'?'` stays a question mark), and the two-argument
    /// `GREATEST(`/`LEAST(`, which are `MAX(`/`MIN(` on SQLite. Everything else in them (`ON
    /// CONFLICT`, `RETURNING`, `TRUE`, `CAST(? AS TEXT)`) both databases read alike.
    pub fn sql(self, text: &str) -> Cow<'_, str> {
        if self == Dialect::Sqlite {
            if text.contains("GREATEST(") || text.contains("LEAST(") {
                return Cow::Owned(text.replace("GREATEST(", "MAX(").replace("LEAST(", "MIN("));
            }
            return Cow::Borrowed(text);
        }
        if !text.contains('?') {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' => quoted = !quoted,
                '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => {
                    out.push('$');
                    continue;
                }
                _ => {}
            }
            out.push(c);
        }
        Cow::Owned(out)
    }

    /// What ends a `SELECT` that locks the rows it reads until the transaction ends:
    /// ` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose one writer excludes every other.
    pub fn lock_rows(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// The text of the JSON field at `path` (`payload.turn_id`) of the `envelope` column.
    pub fn envelope_field(self, path: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST(json_extract(envelope, '$.{path}') AS TEXT)"),
            Dialect::Postgres => format!("envelope::jsonb #>> '{{{}}}'", path.replace('.', ",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_per_dialect_and_strings_kept() {
        let text = "SELECT COALESCE(service, '?') FROM t WHERE a = ?1 AND (?2 IS NULL OR b = ?2)";
        assert_eq!(Dialect::Sqlite.sql(text), text);
        assert_eq!(
            Dialect::Sqlite.sql("SET a = GREATEST(a, ?2), b = LEAST(b, ?2)"),
            "SET a = MAX(a, ?2), b = MIN(b, ?2)"
        );
        assert_eq!(
            Dialect::Postgres.sql(text),
            "SELECT COALESCE(service, '?') FROM t WHERE a = $1 AND ($2 IS NULL OR b = $2)"
        );
    }

    #[test]
    fn only_postgres_locks_the_rows_it_reads() {
        assert_eq!(Dialect::Sqlite.lock_rows(), "");
        assert_eq!(Dialect::Postgres.lock_rows(), " FOR UPDATE");
    }

    #[test]
    fn json_fields_per_dialect() {
        assert_eq!(
            Dialect::Postgres.envelope_field("payload.turn_id"),
            "envelope::jsonb #>> '{payload,turn_id}'"
        );
        assert_eq!(
            Dialect::Sqlite.envelope_field("payload.by"),
            "CAST(json_extract(envelope, '$.payload.by') AS TEXT)"
        );
    }
}
