//! The console's named accounts (issue 21, docs/CONSOLE.md "Accounts and roles"): the four
//! [`Role`]s, the [`Scope`] of stores each one sees, and passwords kept as Argon2id hashes.
//!
//! Data flow: `crm-endpoint user add` / the accounts page → [`hash_password`] →
//! `users` table ([`crate::db::accounts`]); dashboard login → [`verify_password`] → a session
//! row → every request resolves a [`crate::http::Principal`] whose [`Scope`] the handlers pass
//! to their queries.
//!
//! Why Argon2id ([`argon2`], RustCrypto, the crate family of our `sha2` and `hmac`): it is
//! memory-hard, so guessing a leaked hash on GPUs costs memory per guess, not only time; it is
//! RFC 9106's and OWASP's first choice for passwords. The parameters are the crate's defaults
//! (19 MiB, 2 passes, 1 lane: OWASP's minimum), written into each PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`) so that stronger parameters later still verify
//! old hashes.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Shortest password accepted (NIST SP 800-63B asks at least 8; a console that can erase
/// customers gets more).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted: long passphrases fit, a megabyte posted to the login does not.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything: every store, writes, accounts, the audit log.
    HqAdmin,
    /// The stores of one region (`stores.region`): read and write.
    RegionalManager,
    /// One store: read and write.
    StoreManager,
    /// Every store, read only.
    Analyst,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [
        Role::HqAdmin,
        Role::RegionalManager,
        Role::StoreManager,
        Role::Analyst,
    ];

    /// The role's name as stored and typed (`hq-admin`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::HqAdmin => "hq-admin",
            Role::RegionalManager => "regional-manager",
            Role::StoreManager => "store-manager",
            Role::Analyst => "analyst",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?}; one of hq-admin, regional-manager, store-manager, analyst"
                )
            })
    }

    /// Whether the role may change anything (an analyst only reads).
    pub fn writes(self) -> bool {
        !matches!(self, Role::Analyst)
    }
}

/// Which stores a caller sees. Every store-bound page and API call asks [`Scope::allows`]; lists
/// are filtered with it. The one place where a role becomes a set of stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Scope {
    /// Every store (HQ admins, analysts, the admin token).
    All,
    /// The stores whose `region` is this one (regional managers).
    Region(String),
    /// This one store (store managers).
    Store(String),
}

impl Scope {
    /// Whether a store with id `store_id` in region `region` is in scope.
    pub fn allows(&self, store_id: &str, region: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Region(r) => region == Some(r.as_str()),
            Scope::Store(s) => s == store_id,
        }
    }

    /// The scope of `role` given its account's region and store. A regional or store manager
    /// without one sees nothing (the database's checks make that impossible; this is the
    /// fallback that fails closed).
    pub fn of(role: Role, region: Option<&str>, store_id: Option<&str>) -> Scope {
        match role {
            Role::HqAdmin | Role::Analyst => Scope::All,
            Role::RegionalManager => Scope::Region(region.unwrap_or_default().to_owned()),
            Role::StoreManager => Scope::Store(store_id.unwrap_or_default().to_owned()),
        }
    }
}

/// A console account as listed (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Account {
    /// Login name (an identifier: a-z, 0-9, `.`, `_`, `-`).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The region of a regional manager.
    pub region: Option<String>,
    /// The store of a store manager.
    pub store_id: Option<String>,
    /// A disabled account cannot log in and its sessions are ended.
    pub disabled: bool,
    /// Created, unix ms.
    pub created_ms: i64,
    /// Last changed (role, password, disabled), unix ms.
    pub updated_ms: i64,
}

impl Account {
    /// The stores this account sees.
    pub fn scope(&self) -> Scope {
        Scope::of(self.role, self.region.as_deref(), self.store_id.as_deref())
    }
}

/// Checks a role's region and store: a regional manager has a region and no store, a store
/// manager a store and no region, the others neither.
pub fn check_grant(role: Role, region: Option<&str>, store_id: Option<&str>) -> Result<(), String> {
    match (role, region, store_id) {
        (Role::RegionalManager, Some(r), None) => {
            crate::input::check_region(r).map_err(|e| format!("region: {e}"))
        }
        (Role::RegionalManager, _, _) => {
            Err("a regional-manager needs a region (e.g. ES-MD) and no store".into())
        }
        (Role::StoreManager, None, Some(s)) => {
            kiosk_protocol::ident::check(s).map_err(|e| format!("store_id: the store id {e}"))
        }
        (Role::StoreManager, _, _) => Err("a store-manager needs a store and no region".into()),
        (Role::HqAdmin | Role::Analyst, None, None) => Ok(()),
        (r, _, _) => Err(format!(
            "a {} sees every store: give it no region and no store",
            r.as_str()
        )),
    }
}

/// Checks an account name: an identifier (a-z, 0-9, `.`, `_`, `-`; 1 to 64).
pub fn check_name(name: &str) -> Result<(), String> {
    kiosk_protocol::ident::check(name).map_err(|e| format!("name: the account name {e}"))
}

/// Checks a new password's length (in characters).
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password has {n} characters; use at least {MIN_PASSWORD_CHARS} (a few words make a good one)"
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(format!(
            "the password has {n} characters; at most {MAX_PASSWORD_CHARS} are accepted"
        ));
    }
    Ok(())
}

/// Why a password could not be hashed (the RNG or the parameters failed; never the password).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// The Argon2id PHC string of `password` with a fresh random salt. Checks the length first.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    check_password(password).map_err(HashError)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (constant time; a malformed hash is false).
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash no password matches, verified when the account name is unknown so that a wrong name
/// takes as long as a wrong password (no telling which names exist by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(&rand::random::<[u8; 32]>(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("", &h));
        assert!(!verify_password(
            "correct horse battery",
            "not a phc string"
        ));
        let again = hash_password("correct horse battery").unwrap();
        assert_ne!(h, again, "a fresh salt each time");
        assert!(!verify_password("anything at all here", decoy_hash()));
    }

    #[test]
    fn short_and_huge_passwords_are_refused_with_the_reason() {
        let e = hash_password("short").unwrap_err().to_string();
        assert!(e.contains("at least 12"), "{e}");
        assert!(check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        assert!(!verify_password(
            &"x".repeat(MAX_PASSWORD_CHARS + 1),
            decoy_hash()
        ));
        assert!(check_password("twelve chars").is_ok());
    }

    #[test]
    fn each_role_sees_exactly_its_stores() {
        let stores = [
            ("centro", Some("ES-MD")),
            ("norte", Some("ES-MD")),
            ("sur", Some("ES-AN")),
            ("nuevo", None),
        ];
        let seen = |scope: &Scope| -> Vec<&str> {
            stores
                .iter()
                .filter(|(id, region)| scope.allows(id, *region))
                .map(|(id, _)| *id)
                .collect()
        };
        assert_eq!(
            seen(&Scope::of(Role::HqAdmin, None, None)),
            ["centro", "norte", "sur", "nuevo"]
        );
        assert_eq!(
            seen(&Scope::of(Role::Analyst, None, None)),
            ["centro", "norte", "sur", "nuevo"]
        );
        assert_eq!(
            seen(&Scope::of(Role::RegionalManager, Some("ES-MD"), None)),
            ["centro", "norte"]
        );
        assert_eq!(
            seen(&Scope::of(Role::StoreManager, None, Some("sur"))),
            ["sur"]
        );
        // A manager whose region or store is missing sees nothing (fails closed).
        assert!(seen(&Scope::of(Role::RegionalManager, None, None)).is_empty());
        assert!(seen(&Scope::of(Role::StoreManager, None, None)).is_empty());
    }

    #[test]
    fn roles_read_and_write_as_named() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
            assert_eq!(r.writes(), r != Role::Analyst);
        }
        assert!(Role::parse("root").unwrap_err().contains("hq-admin"));
        assert_eq!(
            serde_json::to_value(Role::RegionalManager).unwrap(),
            serde_json::json!("regional-manager")
        );
    }

    #[test]
    fn a_grant_names_what_it_lacks() {
        assert!(check_grant(Role::RegionalManager, Some("ES-MD"), None).is_ok());
        assert!(check_grant(Role::RegionalManager, None, None).is_err());
        assert!(check_grant(Role::StoreManager, None, Some("centro")).is_ok());
        assert!(check_grant(Role::StoreManager, Some("ES-MD"), Some("centro")).is_err());
        assert!(check_grant(Role::HqAdmin, None, Some("centro")).is_err());
        assert!(check_grant(Role::Analyst, None, None).is_ok());
        assert!(check_name("ana.garcia").is_ok());
        assert!(check_name("Ana García").is_err());
    }
}
