//! Demo data for `kiosk demo` and tests: a store, customers with card tokens made from known card
//! UIDs and a known tenant key (so the simulated card reader's UIDs map to these customers),
//! segments and campaigns with A/B variants.

use base64::Engine as _;
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::{
    Campaign, ContentImage, ContentItem, Coupon, Localized, TenantKey, Variant,
};

use crate::db::{DbError, NewCustomer, SharedDb, StoreRecord};

/// The demo tenant key (public: never use it for real customers).
pub const DEMO_TENANT_KEY: TenantKey = TenantKey::from_bytes(*b"kiosk-demo-tenant-key-not-secret");

/// The demo store id.
pub const DEMO_STORE_ID: &str = "demo";
/// The demo store's time zone.
pub const DEMO_STORE_TIMEZONE: &str = "Europe/Madrid";
/// The demo store name.
pub const DEMO_STORE_NAME: &str = "Tienda demo";

/// A demo customer: the UID on their card and who they are.
#[derive(Debug, Clone, Copy)]
pub struct DemoCustomer {
    /// The card UID the simulated reader reports.
    pub uid: &'static [u8],
    /// Display name.
    pub display_name: &'static str,
    /// Segment set for the demo.
    pub segment: &'static str,
    /// Preferred language.
    pub locale: &'static str,
    /// Whether they accepted marketing by email.
    pub marketing: bool,
}

/// The demo customers, in the order the demo uses them.
pub const DEMO_CUSTOMERS: &[DemoCustomer] = &[
    DemoCustomer {
        uid: &[0x04, 0xa1, 0xb2, 0xc3],
        display_name: "Ana",
        segment: "vip",
        locale: "es",
        marketing: true,
    },
    DemoCustomer {
        uid: &[0x04, 0x11, 0x22, 0x33],
        display_name: "Ben",
        segment: "regular",
        locale: "en",
        marketing: true,
    },
    DemoCustomer {
        uid: &[0xde, 0xad, 0xbe, 0xef],
        display_name: "Carmen",
        segment: "new",
        locale: "es",
        marketing: false,
    },
    DemoCustomer {
        uid: &[0x12, 0x34, 0x56, 0x78],
        display_name: "Diego",
        segment: "lapsed",
        locale: "es",
        marketing: true,
    },
];

/// The card token of a demo customer under [`DEMO_TENANT_KEY`].
pub fn demo_token(c: &DemoCustomer) -> CardToken {
    DEMO_TENANT_KEY.card_token(c.uid)
}

/// The demo store's region (Comunidad de Madrid, ISO 3166-2) and place (Puerta del Sol).
pub const DEMO_STORE_REGION: &str = "ES-MD";

/// One demo console account per role: name, role, region or store.
pub const DEMO_ACCOUNTS: &[(&str, crate::accounts::Role)] = &[
    ("hq", crate::accounts::Role::HqAdmin),
    ("madrid", crate::accounts::Role::RegionalManager),
    ("tienda", crate::accounts::Role::StoreManager),
    ("analista", crate::accounts::Role::Analyst),
];

/// A demo console account and its password, to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAccount {
    /// Login name.
    pub name: String,
    /// Its role.
    pub role: crate::accounts::Role,
    /// Its password (`SECRET-NAME`, the secret random per demo data directory).
    pub password: String,
}

/// Creates [`DEMO_ACCOUNTS`] (an HQ admin, the regional manager of [`DEMO_STORE_REGION`], the
/// demo store's manager and an analyst), each with the password `{secret}-{name}`, so that a
/// person can try each role; accounts that exist already keep theirs. The demo store is in
/// [`DEMO_STORE_REGION`] already (the store's seed places it).
pub async fn seed_demo_accounts(db: &SharedDb, secret: &str) -> Result<Vec<DemoAccount>, DbError> {
    use crate::accounts::Role;
    let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
    let mut out = Vec::new();
    for (name, role) in DEMO_ACCOUNTS {
        let password = format!("{secret}-{name}");
        let hash = crate::accounts::hash_password(&password)
            .map_err(|_| DbError::Internal("cannot hash a demo password"))?;
        db.add_account(
            crate::db::accounts::NewAccount {
                name: (*name).to_owned(),
                password_hash: hash,
                role: *role,
                region: (*role == Role::RegionalManager).then(|| DEMO_STORE_REGION.to_owned()),
                store_id: (*role == Role::StoreManager).then(|| DEMO_STORE_ID.to_owned()),
            },
            now,
        )
        .await?;
        out.push(DemoAccount {
            name: (*name).to_owned(),
            role: *role,
            password,
        });
    }
    Ok(out)
}

/// What [`seed_demo`] created.
#[derive(Debug, Clone)]
pub struct DemoSeed {
    /// The demo store.
    pub store: StoreRecord,
    /// The tenant key in use (equal to [`DEMO_TENANT_KEY`] unless the database already had
    /// kiosks or customers).
    pub tenant_key: TenantKey,
    /// A one-time enrollment code for the demo store, valid for a day.
    pub enroll_code: String,
    /// The demo customers' tokens, in [`DEMO_CUSTOMERS`] order.
    pub tokens: Vec<CardToken>,
}

fn text(es: &str, en: &str) -> Localized {
    Localized {
        es: es.to_owned(),
        en: en.to_owned(),
    }
}

/// The demo campaigns: a "join us" welcome for visitors without a card (A/B, with a coupon; never
/// shown to a card holder, a just-registered one included) and a coffee coupon for VIPs and
/// regulars.
pub fn demo_campaigns() -> Vec<Campaign> {
    let always = (
        time::macros::date!(2020 - 01 - 01),
        time::macros::date!(2099 - 12 - 31),
    );
    vec![
        Campaign {
            id: "demo-welcome".into(),
            name: "Bienvenida".into(),
            // Visitors without a card only: members (segment `new` included) never see "join us".
            target_segments: vec!["anonymous".into()],
            services: vec![],
            stores: vec![DEMO_STORE_ID.into()],
            regions: vec![],
            starts_on: always.0,
            ends_on: always.1,
            screen_text: text(
                "¡Bienvenido! Pregunte por nuestra tarjeta",
                "Welcome! Ask about our card",
            ),
            ticket_line: text("Hágase socio hoy", "Join today"),
            image: None,
            coupon: Some(Coupon {
                code: "BIENV".into(),
                text: text(
                    "10 % en su primera compra al hacerse socio",
                    "10 % off your first purchase when you join",
                ),
                valid_days: None,
                max_per_customer: None,
            }),
            variants: vec![
                Variant {
                    name: "a".into(),
                    weight: 1,
                    screen_text: None,
                    ticket_line: None,
                    image: None,
                },
                Variant {
                    name: "b".into(),
                    weight: 1,
                    screen_text: Some(text(
                        "Con la tarjeta, 10 % de descuento",
                        "10 % off with the card",
                    )),
                    ticket_line: None,
                    image: None,
                },
            ],
            content: vec![ContentItem {
                id: "welcome-1".into(),
                text: text(
                    "Hágase socio: 10 % en su primera compra",
                    "Join us: 10 % off your first purchase",
                ),
                image: None,
                duration_s: 8,
            }],
            active: true,
        },
        Campaign {
            id: "demo-vip-coffee".into(),
            name: "Café VIP".into(),
            target_segments: vec!["vip".into(), "regular".into()],
            services: vec![],
            stores: vec![DEMO_STORE_ID.into()],
            regions: vec![],
            starts_on: always.0,
            ends_on: always.1,
            screen_text: text("Su café corre de nuestra cuenta", "Your coffee is on us"),
            ticket_line: text(
                "Café gratis con este ticket",
                "Free coffee with this ticket",
            ),
            image: None,
            coupon: Some(Coupon {
                code: "CAFE".into(),
                text: text("1 café gratis", "1 free coffee"),
                valid_days: None,
                max_per_customer: None,
            }),
            variants: vec![],
            content: vec![ContentItem {
                id: "coffee-1".into(),
                text: text(
                    "Su café corre de nuestra cuenta mientras espera",
                    "Your coffee is on us while you wait",
                ),
                image: Some(ContentImage {
                    mime: kiosk_protocol::wire::ImageMime::Png,
                    data: base64::engine::general_purpose::STANDARD.encode(DEMO_COFFEE_PNG),
                    alt: text("Una taza de café humeante", "A steaming cup of coffee"),
                }),
                duration_s: 10,
            }],
            active: true,
        },
    ]
}

/// The demo's signage picture: a cup of coffee, 240x160, drawn for the demo (468 bytes).
const DEMO_COFFEE_PNG: &[u8] = include_bytes!("demo-coffee.png");

/// Seeds `db` with the demo store, customers and campaigns (idempotent: safe on every start).
pub async fn seed_demo(db: &SharedDb) -> Result<DemoSeed, DbError> {
    // The demo's tenant key is public (it is in this source): on a database with stores of its
    // own it would become every real kiosk's key for good.
    let own: Vec<String> = db
        .list_stores()
        .await?
        .into_iter()
        .map(|s| s.id)
        .filter(|id| id != DEMO_STORE_ID)
        .collect();
    if !own.is_empty() {
        return Err(DbError::Refused(format!(
            "refusing to seed the demo: this database has stores of its own ({}); the demo's tenant key is public. Use --demo only on a new database",
            own.join(", ")
        )));
    }
    db.set_tenant_key_if_unused(DEMO_TENANT_KEY).await?;
    let tenant_key = db.tenant_key().await?;
    let record = StoreRecord {
        id: DEMO_STORE_ID.into(),
        name: DEMO_STORE_NAME.into(),
    };
    db.upsert_store(record.clone()).await?;
    // The demo store is in Madrid: the dashboard shows its hours as the shop sees them.
    db.set_store_timezone(DEMO_STORE_ID.into(), Some(DEMO_STORE_TIMEZONE.into()))
        .await?;
    // ... on the Puerta del Sol: the regions map (/dashboard/map) shows it in Madrid.
    db.set_store_place(
        DEMO_STORE_ID.into(),
        crate::db::places::PlaceUpdate {
            name: None,
            region: Some(DEMO_STORE_REGION.into()),
            latitude: Some(40.4168),
            longitude: Some(-3.7038),
        },
    )
    .await?;
    let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
    let mut tokens = Vec::new();
    for c in DEMO_CUSTOMERS {
        let token = tenant_key.card_token(c.uid);
        let mut consents = vec!["profile".to_owned()];
        if c.marketing {
            consents.push("marketing_email".to_owned());
        }
        db.upsert_customer(
            NewCustomer {
                card_token: token.clone(),
                store_id: DEMO_STORE_ID.into(),
                display_name: c.display_name.into(),
                locale: c.locale.into(),
                email: None,
                phone: None,
                consents,
                segment: Some(c.segment.into()),
                visits: 0,
            },
            now,
        )
        .await?;
        tokens.push(token);
    }
    for campaign in demo_campaigns() {
        db.upsert_campaign(campaign, now).await?;
    }
    let (enroll_code, _) =
        crate::api::issue_enroll_code(db, DEMO_STORE_ID, std::time::Duration::from_secs(24 * 3600))
            .await?;
    Ok(DemoSeed {
        store: record,
        tenant_key,
        enroll_code,
        tokens,
    })
}
