//! The numbered schema migrations on SQLite and on a throwaway PostgreSQL: a database written by
//! a newer endpoint is refused naming both versions, and a database made before versions were
//! recorded (today's unversioned schema) is adopted as version 1 with its data.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, fresh_url};
use crm_endpoint::db::{DbError, StoreRecord, migrations};

/// Runs `sql` (several statements) on the database at `url`, outside the endpoint.
async fn raw(url: &str, sql: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let (path, sql) = (path.to_owned(), sql.to_owned());
        tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            c.execute_batch(&sql).unwrap();
        })
        .await
        .unwrap();
    } else {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = task.await;
    }
}

/// The recorded schema version.
async fn version(url: &str) -> i64 {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.query_row(migrations::READ_VERSION, [], |r| r.get(0))
                .unwrap()
        })
        .await
        .unwrap()
    } else {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query_one(migrations::READ_VERSION, &[])
            .await
            .unwrap()
            .get(0)
    }
}

fn schema_v1(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => migrations::SQLITE[0].sql,
        Backend::Postgres => migrations::POSTGRES[0].sql,
    }
}

async fn a_newer_database_is_a_clear_error(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    drop(db);
    assert_eq!(version(&url).await, 1);
    raw(&url, "UPDATE schema_version SET version = 99").await;
    let err = match crm_endpoint::db::open(&url).await {
        Ok(_) => panic!("a database of schema version 99 was opened"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            DbError::NewerSchema {
                found: 99,
                supported: 1
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("version 99") && text.contains("up to version 1"),
        "{text}"
    );
}

async fn an_unversioned_database_is_adopted_as_version_1(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    // What endpoints before numbered migrations left: the schema, a tenant key and data, and no
    // schema_version table.
    raw(
        &url,
        &format!(
            "{}
            INSERT INTO settings (key, value) VALUES ('tenant_key', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
            INSERT INTO settings (key, value) VALUES ('dashboard_backfilled', '1');
            INSERT INTO stores (id, name) VALUES ('north', 'Tienda Norte');",
            schema_v1(backend)
        ),
    )
    .await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    assert_eq!(
        db.store("north".into()).await.unwrap(),
        Some(StoreRecord {
            id: "north".into(),
            name: "Tienda Norte".into()
        })
    );
    assert_eq!(
        db.tenant_key().await.unwrap().to_base64(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
    drop(db);
    assert_eq!(version(&url).await, 1);
    // And it opens again as an ordinary versioned database.
    crm_endpoint::db::open(&url).await.unwrap();
}

on_both_databases!(
    a_newer_database_is_a_clear_error,
    an_unversioned_database_is_adopted_as_version_1
);
