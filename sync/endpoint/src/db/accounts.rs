//! The console's accounts and their sessions ([`crate::accounts`]): `users` and `user_sessions`
//! (schema 13). A password reaches this module only as its Argon2id PHC string, a session only as
//! the SHA-256 digest of its cookie's secret.
//!
//! Data flow: CLI / accounts page / login ([`crate::http::auth`]) → **accounts** → `users`,
//! `user_sessions`.

use crate::accounts::{Account, Role};

use super::exec::{Exec, Row, args};
use super::model::{DbError, DbResult};

/// A new account (its password already hashed).
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Login name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// A regional manager's region.
    pub region: Option<String>,
    /// A store manager's store.
    pub store_id: Option<String>,
}

/// A change to an account; `None` leaves that part as it is. Any change ends the account's
/// sessions (a demoted or disabled person keeps no open console).
#[derive(Debug, Clone, Default)]
pub struct AccountChange {
    /// New role with its region and store (checked by the caller).
    pub grant: Option<(Role, Option<String>, Option<String>)>,
    /// Disable (true) or enable.
    pub disabled: Option<bool>,
    /// A new password's PHC string.
    pub password_hash: Option<String>,
}

const COLUMNS: &str = "name, role, region, store_id, disabled, created_ms, updated_ms";

fn account(r: &Row) -> DbResult<Account> {
    let role: String = r.get(1)?;
    Ok(Account {
        name: r.get(0)?,
        role: Role::parse(&role).map_err(DbError::Corrupt)?,
        region: r.get(2)?,
        store_id: r.get(3)?,
        disabled: r.get(4)?,
        created_ms: r.get(5)?,
        updated_ms: r.get(6)?,
    })
}

/// Creates an account; false (nothing changed) when the name is taken. `NotFound` when a store
/// manager's store does not exist.
pub(crate) async fn add_account(e: &impl Exec, a: NewAccount, now_ms: i64) -> DbResult<bool> {
    if let Some(store) = &a.store_id {
        let exists: bool = e
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM stores WHERE id = ?1)",
                args![store],
            )
            .await?
            .get(0)?;
        if !exists {
            return Err(DbError::NotFound(format!("store {store:?}")));
        }
    }
    let n = e
        .execute(
            "INSERT INTO users (name, password_hash, role, region, store_id, disabled, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (name) DO NOTHING",
            args![
                a.name,
                a.password_hash,
                a.role.as_str(),
                a.region,
                a.store_id,
                false,
                now_ms
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Every account, by name.
pub(crate) async fn accounts(e: &impl Exec) -> DbResult<Vec<Account>> {
    e.query(&format!("SELECT {COLUMNS} FROM users ORDER BY name"), &[])
        .await?
        .iter()
        .map(account)
        .collect()
}

/// An account and its password hash (the login).
pub(crate) async fn credentials(
    e: &impl Exec,
    name: String,
) -> DbResult<Option<(Account, String)>> {
    e.query_opt(
        &format!("SELECT {COLUMNS}, password_hash FROM users WHERE name = ?1"),
        args![name],
    )
    .await?
    .map(|r| Ok((account(&r)?, r.get(7)?)))
    .transpose()
}

/// Applies `change` to account `name` and ends its sessions; false when there is no such
/// account.
pub(crate) async fn change_account(
    e: &impl Exec,
    name: String,
    change: AccountChange,
    now_ms: i64,
) -> DbResult<bool> {
    let exists = e
        .query_opt("SELECT 1 FROM users WHERE name = ?1", args![&name])
        .await?
        .is_some();
    if !exists {
        return Ok(false);
    }
    if let Some((role, region, store)) = change.grant {
        if let Some(s) = &store {
            let known: bool = e
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM stores WHERE id = ?1)",
                    args![s],
                )
                .await?
                .get(0)?;
            if !known {
                return Err(DbError::NotFound(format!("store {s:?}")));
            }
        }
        e.execute(
            "UPDATE users SET role = ?2, region = ?3, store_id = ?4 WHERE name = ?1",
            args![&name, role.as_str(), region, store],
        )
        .await?;
    }
    if let Some(d) = change.disabled {
        e.execute(
            "UPDATE users SET disabled = ?2 WHERE name = ?1",
            args![&name, d],
        )
        .await?;
    }
    if let Some(h) = change.password_hash {
        e.execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            args![&name, h],
        )
        .await?;
    }
    e.execute(
        "UPDATE users SET updated_ms = ?2 WHERE name = ?1",
        args![&name, now_ms],
    )
    .await?;
    e.execute(
        "DELETE FROM user_sessions WHERE user_name = ?1",
        args![&name],
    )
    .await?;
    Ok(true)
}

/// Whether any account is enabled (the login page offers the token form only when none is).
pub(crate) async fn any_account(e: &impl Exec) -> DbResult<bool> {
    e.query_one(
        "SELECT EXISTS (SELECT 1 FROM users WHERE disabled = ?1)",
        args![false],
    )
    .await?
    .get(0)
}

/// Opens a session of `user` until `expires_ms`; forgets expired sessions on the way.
pub(crate) async fn open_session(
    e: &impl Exec,
    id_hash: String,
    user: String,
    now_ms: i64,
    expires_ms: i64,
) -> DbResult<()> {
    e.execute(
        "DELETE FROM user_sessions WHERE expires_ms <= ?1",
        args![now_ms],
    )
    .await?;
    e.execute(
        "INSERT INTO user_sessions (id_hash, user_name, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
        args![id_hash, user, now_ms, expires_ms],
    )
    .await?;
    Ok(())
}

/// The enabled account of an unexpired session, with the session's expiry (unix ms).
pub(crate) async fn session(
    e: &impl Exec,
    id_hash: String,
    now_ms: i64,
) -> DbResult<Option<(Account, i64)>> {
    e.query_opt(
        "SELECT u.name, u.role, u.region, u.store_id, u.disabled, u.created_ms, u.updated_ms,
                s.expires_ms
         FROM user_sessions s JOIN users u ON u.name = s.user_name
         WHERE s.id_hash = ?1 AND s.expires_ms > ?2 AND u.disabled = ?3",
        args![id_hash, now_ms, false],
    )
    .await?
    .map(|r| Ok((account(&r)?, r.get(7)?)))
    .transpose()
}

/// Ends a session (logout); nothing when it is not there.
pub(crate) async fn end_session(e: &impl Exec, id_hash: String) -> DbResult<()> {
    e.execute(
        "DELETE FROM user_sessions WHERE id_hash = ?1",
        args![id_hash],
    )
    .await?;
    Ok(())
}
