//! The console's accounts and the stores' places over the admin API (HQ admins and the admin
//! token only, [`Admin`]): list, create, change (role, region, store, disabled) and reset the
//! password of accounts; set a store's name, region and coordinates. The accounts page
//! ([`crate::dashboard::console`]) calls these with its session; scripts with the token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kiosk_protocol::ident::{self, Ident};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{self, Account, Role};
use crate::db::accounts::{AccountChange, NewAccount};
use crate::db::places::PlaceUpdate;
use crate::http::doc::{ADMIN_ERRORS, Security, op, path_param, with_params};
use crate::http::{Admin, ApiError, AppState, Route, Verb, json_body, now_ms};

fn admin_op(
    summary: &str,
    request: Option<&str>,
    ok: (&str, &str, Option<&str>),
) -> serde_json::Value {
    op(summary, Security::Admin, request, ok, ADMIN_ERRORS)
}

/// The routes.
pub fn routes() -> Vec<Route> {
    let name = || json!([path_param("name", "Ident")]);
    vec![
        Route::new(
            Verb::Get,
            "/v1/admin/accounts",
            list,
            admin_op(
                "the console's accounts, by name (never a password hash)",
                None,
                ("200", "the accounts", Some("AccountList")),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/accounts",
            add,
            op(
                "create a console account: name, role (hq-admin, regional-manager with a region, store-manager with a store, analyst) and a password of 12 to 256 characters, kept as an Argon2id hash; 409 when the name is taken",
                Security::Admin,
                Some("NewAccountRequest"),
                ("201", "created", Some("Account")),
                &["400", "403", "404", "409", "429", "503"],
            ),
        ),
        Route::new(
            Verb::Put,
            "/v1/admin/accounts/{name}",
            change,
            with_params(
                admin_op(
                    "change an account's role (with its region or store) or disable/enable it; ends its sessions",
                    Some("AccountChangeRequest"),
                    ("200", "the account as changed", Some("Account")),
                ),
                name(),
            ),
        ),
        Route::new(
            Verb::Put,
            "/v1/admin/accounts/{name}/password",
            password,
            with_params(
                admin_op(
                    "set an account's password (12 to 256 characters); ends its sessions",
                    Some("PasswordRequest"),
                    ("204", "set", None),
                ),
                name(),
            ),
        ),
        Route::new(
            Verb::Put,
            "/v1/admin/stores/{store_id}/location",
            location,
            with_params(
                admin_op(
                    "set a store's name (optional), region (a code such as ES-MD, or null) and coordinates (WGS 84 degrees, or null): regional managers see the stores of their region",
                    Some("PlaceUpdate"),
                    ("204", "set", None),
                ),
                json!([path_param("store_id", "Ident")]),
            ),
        ),
    ]
}

/// Adds the schemas these paths refer to.
pub fn register_schemas(g: &mut schemars::SchemaGenerator) {
    g.subschema_for::<Account>();
    g.subschema_for::<NewAccountRequest>();
    g.subschema_for::<AccountChangeRequest>();
    g.subschema_for::<PasswordRequest>();
    g.subschema_for::<PlaceUpdate>();
}

/// Array schemas these paths refer to by name.
pub fn lists() -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    out.insert(
        "AccountList".into(),
        json!({ "type": "array", "items": crate::http::doc::schema_ref("Account") }),
    );
    out
}

/// Body of `POST /v1/admin/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccountRequest {
    /// Login name.
    #[serde(deserialize_with = "ident::deserialize")]
    pub name: String,
    /// Role.
    pub role: Role,
    /// A regional manager's region (only theirs).
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// A store manager's store (only theirs).
    #[serde(default, deserialize_with = "present")]
    pub store_id: Option<String>,
    /// The password, 12 to 256 characters.
    pub password: String,
}

/// The schema of a role with what it needs (`check_grant`'s rule, stated so that a generated
/// body follows it): a regional manager with a region, a store manager with a store, the others
/// with neither. `extra` are the other properties of the body, `required` its required ones.
fn grant_schema(
    g: &mut schemars::SchemaGenerator,
    extra: serde_json::Value,
    required: &[&str],
    role_optional: bool,
) -> schemars::Schema {
    let ident = serde_json::to_value(g.subschema_for::<Ident>()).unwrap_or_default();
    let region = json!({ "type": "string", "pattern": r"^[A-Z]{2}-[A-Z0-9]{1,9}$",
        "description": "an ISO 3166-2 region code (ES-MD), as stores carry" });
    let branch = |roles: serde_json::Value, own: Option<(&str, serde_json::Value)>| {
        let mut props = extra.as_object().cloned().unwrap_or_default();
        props.insert("role".into(), json!({ "type": "string", "enum": roles }));
        let mut req: Vec<&str> = required.to_vec();
        req.push("role");
        if let Some((k, v)) = own {
            props.insert(k.into(), v);
            req.push(k);
        }
        json!({ "type": "object", "properties": props, "required": req, "additionalProperties": false })
    };
    let mut branches = vec![
        branch(json!(["hq-admin", "analyst"]), None),
        branch(json!(["regional-manager"]), Some(("region", region))),
        branch(json!(["store-manager"]), Some(("store_id", ident))),
    ];
    if role_optional {
        branches.push(json!({ "type": "object", "properties": extra,
            "required": required, "additionalProperties": false }));
    }
    schemars::json_schema!({ "type": "object", "oneOf": branches })
}

impl JsonSchema for NewAccountRequest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NewAccountRequest".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let ident = serde_json::to_value(g.subschema_for::<Ident>()).unwrap_or_default();
        grant_schema(
            g,
            json!({
                "name": ident,
                "password": { "type": "string", "minLength": 12, "maxLength": 256,
                    "description": "12 to 256 characters, kept as an Argon2id hash" },
            }),
            &["name", "password"],
            false,
        )
    }
}

/// Body of `PUT /v1/admin/accounts/{name}`: the new role with its region or store, and/or
/// disabled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountChangeRequest {
    /// New role (give its region or store with it); absent keeps the role.
    #[serde(default, deserialize_with = "present")]
    pub role: Option<Role>,
    /// A regional manager's region.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// A store manager's store.
    #[serde(default, deserialize_with = "present")]
    pub store_id: Option<String>,
    /// Disable (true) or enable (false); absent keeps it.
    #[serde(default, deserialize_with = "present")]
    pub disabled: Option<bool>,
}

impl JsonSchema for AccountChangeRequest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AccountChangeRequest".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        grant_schema(
            g,
            json!({ "disabled": { "type": "boolean", "description": "disable (true) or enable (false)" } }),
            &[],
            true,
        )
    }
}

/// A JSON object body as `T` (serde would also read a struct from an array).
fn object_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let v: serde_json::Value = json_body(body)?;
    if !v.is_object() {
        return Err(ApiError::malformed("body: a JSON object is expected"));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let place = if path == "." {
            "body".to_owned()
        } else {
            format!("body.{path}")
        };
        ApiError::malformed(format!("{place}: {}", e.into_inner()))
    })
}

/// Body of `PUT /v1/admin/accounts/{name}/password`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The new password, 12 to 256 characters.
    #[schemars(length(min = 12, max = 256))]
    pub password: String,
}

/// An optional field that, when present, is not `null` (the schema does not allow it).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn name_param(name: &str) -> Result<String, ApiError> {
    accounts::check_name(name).map_err(ApiError::malformed)?;
    Ok(name.to_owned())
}

/// Hashes off the async workers (Argon2 takes tens of milliseconds and 19 MiB).
async fn hash(password: String) -> Result<String, ApiError> {
    accounts::check_password(&password)
        .map_err(|e| ApiError::malformed(format!("body.password: {e}")))?;
    tokio::task::spawn_blocking(move || accounts::hash_password(&password))
        .await
        .map_err(|_| ApiError::malformed("the password could not be hashed"))?
        .map_err(|e| ApiError::malformed(e.to_string()))
}

async fn list(_: Admin, State(st): State<AppState>) -> Result<Json<Vec<Account>>, ApiError> {
    Ok(Json(st.db.accounts().await?))
}

async fn account(st: &AppState, name: &str) -> Result<Account, ApiError> {
    st.db
        .accounts()
        .await?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no account named {name:?}")))
}

async fn add(
    _: Admin,
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Account>), ApiError> {
    let req: NewAccountRequest = object_body(body)?;
    accounts::check_grant(req.role, req.region.as_deref(), req.store_id.as_deref())
        .map_err(|e| ApiError::malformed(format!("body: {e}")))?;
    let password_hash = hash(req.password).await?;
    let created = st
        .db
        .add_account(
            NewAccount {
                name: req.name.clone(),
                password_hash,
                role: req.role,
                region: req.region,
                store_id: req.store_id,
            },
            now_ms(),
        )
        .await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            kiosk_protocol::wire::ErrorCode::Malformed,
            format!("an account named {:?} exists already", req.name),
        ));
    }
    Ok((StatusCode::CREATED, Json(account(&st, &req.name).await?)))
}

async fn change(
    _: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Account>, ApiError> {
    let name = name_param(&name)?;
    let req: AccountChangeRequest = object_body(body)?;
    let grant = match req.role {
        Some(role) => {
            accounts::check_grant(role, req.region.as_deref(), req.store_id.as_deref())
                .map_err(|e| ApiError::malformed(format!("body: {e}")))?;
            Some((role, req.region, req.store_id))
        }
        None if req.region.is_some() || req.store_id.is_some() => {
            return Err(ApiError::malformed(
                "body: give the role with its region or store",
            ));
        }
        None => None,
    };
    let change = AccountChange {
        grant,
        disabled: req.disabled,
        password_hash: None,
    };
    if !st.db.change_account(name.clone(), change, now_ms()).await? {
        return Err(ApiError::not_found(format!("no account named {name:?}")));
    }
    Ok(Json(account(&st, &name).await?))
}

async fn password(
    _: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let name = name_param(&name)?;
    let req: PasswordRequest = object_body(body)?;
    let change = AccountChange {
        password_hash: Some(hash(req.password).await?),
        ..AccountChange::default()
    };
    if !st.db.change_account(name.clone(), change, now_ms()).await? {
        return Err(ApiError::not_found(format!("no account named {name:?}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn location(
    _: Admin,
    State(st): State<AppState>,
    Path(store_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    ident::check(&store_id)
        .map_err(|e| ApiError::malformed(format!("store_id: the store id {e}")))?;
    let place: PlaceUpdate = object_body(body)?;
    place
        .check()
        .map_err(|e| ApiError::malformed(format!("body.{e}")))?;
    st.db.set_store_place(store_id, place).await?;
    Ok(StatusCode::NO_CONTENT)
}
