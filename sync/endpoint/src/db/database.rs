//! The [`Database`] trait both backends implement, and the shared handle [`SharedDb`].

use std::sync::Arc;

use futures::future::BoxFuture;
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::{Campaign, EventStatus, TenantKey};

use super::dashboard::{Dashboard, DashboardQuery, StoreSummary};
use super::model::{
    AuditEntry, CustomerRecord, DbKind, DbResult, FeedPage, IngestBatch, KioskRecord, NewCustomer,
    NewKiosk, StoreRecord, StoreStats,
};
use super::queue::{LiveQueue, LiveQueueQuery};

/// Everything the endpoint persists. Both implementations must behave identically: the test
/// suite in `sync/endpoint/tests/` runs against each.
pub trait Database: Send + Sync + 'static {
    /// Which database this is.
    fn kind(&self) -> DbKind;

    /// The tenant key card tokens are made with (created at first start, never changed).
    fn tenant_key(&self) -> BoxFuture<'_, DbResult<TenantKey>>;

    /// Replaces the tenant key while no kiosk is enrolled and no customer known (demo set-ups
    /// that need a known key); false, and nothing changed, once either exists.
    fn set_tenant_key_if_unused(&self, key: TenantKey) -> BoxFuture<'_, DbResult<bool>>;

    /// Creates a store or renames an existing one.
    fn upsert_store(&self, store: StoreRecord) -> BoxFuture<'_, DbResult<()>>;

    /// A store by id.
    fn store(&self, id: String) -> BoxFuture<'_, DbResult<Option<StoreRecord>>>;

    /// Records a one-time enrollment code (only its hash) for `store_id`, valid until
    /// `expires_ms`.
    fn create_enroll_code(
        &self,
        code_hash: String,
        store_id: String,
        expires_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Atomically spends an unexpired, unused code and enrolls `kiosk` in its store. `None` when
    /// the code is unknown, spent or expired.
    fn redeem_enroll_code(
        &self,
        code_hash: String,
        now_ms: i64,
        kiosk: NewKiosk,
    ) -> BoxFuture<'_, DbResult<Option<StoreRecord>>>;

    /// An enrolled kiosk.
    fn kiosk(&self, kiosk_id: String) -> BoxFuture<'_, DbResult<Option<KioskRecord>>>;

    /// Remembers a request signature until `expires_ms`; false when it was already seen (a
    /// replay). Forgets expired signatures on the way.
    fn remember_signature(
        &self,
        signature: String,
        expires_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Marks a kiosk as seen now (any authenticated request).
    fn touch_kiosk(&self, kiosk_id: String, now_ms: i64) -> BoxFuture<'_, DbResult<()>>;

    /// Stores a batch in one transaction: each event is stored once (accepted) or found stored
    /// (duplicate), its effects applied only when accepted. Answers per event, in order. With a
    /// [`ReplayGuard`](super::model::ReplayGuard), the signature is remembered in the same transaction, and a signature seen
    /// before is [`DbError::Replayed`](super::model::DbError::Replayed) with nothing stored.
    fn ingest(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<Vec<EventStatus>>>;

    /// Plain inserts of event rows, no dedupe check or effects: the benchmark's reference.
    fn insert_events_bare(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<u64>>;

    /// Number of stored events (all kiosks).
    fn event_count(&self) -> BoxFuture<'_, DbResult<u64>>;

    /// The feed of `store_id` after `cursor`, with the kinds a kiosk of `feed_version` knows
    /// ([`kiosk_protocol::wire::FEED_VERSION`]).
    fn feed(
        &self,
        store_id: String,
        cursor: u64,
        limit: u32,
        feed_version: u32,
    ) -> BoxFuture<'_, DbResult<FeedPage>>;

    /// A kiosk of `store_id` looks up a card its cache does not know: the registered customer's
    /// profile (`None` for nobody, or a customer who never registered a name). The customer
    /// becomes known to the store, so their later changes reach its feed.
    fn lookup_profile(
        &self,
        store_id: String,
        token: CardToken,
    ) -> BoxFuture<'_, DbResult<Option<kiosk_protocol::wire::Profile>>>;

    /// Creates or replaces a campaign and publishes it to its stores' feeds.
    fn upsert_campaign(&self, campaign: Campaign, now_ms: i64) -> BoxFuture<'_, DbResult<()>>;

    /// All campaigns.
    fn campaigns(&self) -> BoxFuture<'_, DbResult<Vec<Campaign>>>;

    /// Sets a store's configuration: the next version (1 for the first), kept with the earlier
    /// ones and published to the store's feed in place of the previous version. `NotFound`
    /// when the store does not exist. The caller checked `parts`
    /// ([`kiosk_protocol::store_config::StoreConfigParts::check`]).
    fn set_store_config(
        &self,
        store_id: String,
        parts: kiosk_protocol::store_config::StoreConfigParts,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<kiosk_protocol::store_config::StoreConfig>>;

    /// A store's newest configuration, if one was set.
    fn store_config(
        &self,
        store_id: String,
    ) -> BoxFuture<'_, DbResult<Option<kiosk_protocol::store_config::StoreConfig>>>;

    /// What each kiosk of a store last reported about its configuration, by kiosk id.
    fn kiosk_configs(
        &self,
        store_id: String,
    ) -> BoxFuture<
        '_,
        DbResult<std::collections::BTreeMap<String, super::dashboard::KioskConfigState>>,
    >;

    /// A customer, for the admin API.
    fn customer(&self, token: CardToken) -> BoxFuture<'_, DbResult<Option<CustomerRecord>>>;

    /// Sets a customer's segment by hand (`Some`) or returns it to computation (`None`). False
    /// when there is no such customer.
    fn set_segment(
        &self,
        token: CardToken,
        segment: Option<String>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Recomputes every computed segment at `now_ms` (lapsed customers need time, not events);
    /// returns how many changed.
    fn recompute_segments(&self, now_ms: i64) -> BoxFuture<'_, DbResult<u64>>;

    /// Creates a customer profile directly (admin API, demo seed) as if registered at `store_id`.
    fn upsert_customer(&self, customer: NewCustomer, now_ms: i64) -> BoxFuture<'_, DbResult<()>>;

    /// Erases a customer's personal data (profile, personal fields in stored events), records an
    /// erasure in every store's feed. The erasure is remembered even for a token never seen (a
    /// registration still in some kiosk's outbox is then stored redacted when it arrives).
    /// False when nothing was stored under the token yet.
    fn erase_customer(&self, token: CardToken, now_ms: i64) -> BoxFuture<'_, DbResult<bool>>;

    /// Makes erased data physically gone from the files, after [`Database::erase_customer`]:
    /// SQLite (`secure_delete` zeroes deleted content) checkpoints and truncates its WAL, which
    /// still holds the old pages; PostgreSQL vacuums the tables that held them, so their dead
    /// tuples are no longer kept (docs/SECURITY.md says how long bytes can remain).
    fn purge_erased(&self) -> BoxFuture<'_, DbResult<()>>;

    /// Statistics of one store.
    fn stats(&self, store_id: String) -> BoxFuture<'_, DbResult<StoreStats>>;

    /// Sets (or clears) a store's IANA time zone, which the dashboard's hours are in; the caller
    /// checks the name ([`known_timezone`](super::dashboard::known_timezone)). `NotFound` when the store does not exist.
    fn set_store_timezone(
        &self,
        store_id: String,
        timezone: Option<String>,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Every store with its time zone and kiosks, by id.
    fn list_stores(&self) -> BoxFuture<'_, DbResult<Vec<StoreSummary>>>;

    /// Appends a line to the operator's audit log.
    fn audit(&self, entry: AuditEntry) -> BoxFuture<'_, DbResult<()>>;

    /// The audit log from `since_ms`, newest first, at most `limit` lines.
    fn audit_log(&self, since_ms: i64, limit: i64) -> BoxFuture<'_, DbResult<Vec<AuditEntry>>>;

    /// The dashboard of one store (or one of its kiosks) over a window: tickets per hour and
    /// service, waiting and service times, visitors, campaign conversion, NPS, and its kiosks'
    /// health and last log lines. Indexed: the window's rows are read, not the store's history.
    /// `NotFound` when the store does not exist.
    fn dashboard(&self, query: DashboardQuery) -> BoxFuture<'_, DbResult<Dashboard>>;

    /// The live queue of one store now: waiting turns per service with the longest current
    /// wait, open counters, the latest calls and each kiosk's tickets of the day, folded from
    /// the queue events of all its kiosks (see [`super::queue`]). `NotFound` when the store
    /// does not exist.
    fn live_queue(&self, query: LiveQueueQuery) -> BoxFuture<'_, DbResult<LiveQueue>>;

    /// Whether turn `turn_id` of store `store_id` may be rated now (docs/DESIGN.md invariant
    /// 17): served in the live queue and no answer kept for it. The rule the kiosks apply, for
    /// the phone companion (issue 19) to ask by turn id.
    fn survey_status(
        &self,
        store_id: String,
        turn_id: uuid::Uuid,
    ) -> BoxFuture<'_, DbResult<kiosk_protocol::wire::SurveyStatus>>;

    /// Turn `turn_id` of store `store_id` and business day `business_day` as the customer's
    /// phone shows it (its turn page, [`super::phone`]); `label` is the printed turn, shown until
    /// the turn's events arrive. `None` when the store does not exist or the turn is another
    /// store's or another day's (a token must never show another customer's turn).
    fn turn_view(
        &self,
        store_id: String,
        business_day: String,
        turn_id: uuid::Uuid,
        label: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<Option<super::phone::TurnView>>>;

    /// Keeps a survey answer given on the customer's phone, if its turn may be rated
    /// ([`Database::survey_status`] is `open`): stored like a kiosk's `survey_answered` (kiosk
    /// id `phone`), counted as the turn's one answer, and put in the store's feed as
    /// `turn_rated` so its kiosks refuse a second. Answers the status: `open` when kept, else
    /// why not (`already_answered` also when another answer won a race).
    fn rate_turn(
        &self,
        store_id: String,
        answer: kiosk_protocol::events::SurveyAnswered,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<kiosk_protocol::wire::SurveyStatus>>;

    /// The VAPID private key (Web Push, [`crate::push`]): the stored one, else `candidate`,
    /// stored (made once, on first use, the same for every replica).
    fn vapid_secret(&self, candidate: String) -> BoxFuture<'_, DbResult<String>>;

    /// Keeps a turn page's push subscription until the store's business day `business_day`
    /// ends (the same browser again replaces its keys).
    fn subscribe_push(
        &self,
        store_id: String,
        business_day: String,
        target: super::phone::PushTarget,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// The store's business day at `now_ms`, its "near" threshold (turns ahead) and the push
    /// subscriptions of its turns that still await a message; deletes those of other days.
    fn push_subscriptions(
        &self,
        store_id: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<(String, u32, Vec<super::phone::PushTarget>)>>;

    /// Records that a subscription got its "near" message, or its "called" one (`called`).
    fn mark_push_sent(
        &self,
        turn_id: uuid::Uuid,
        endpoint: String,
        called: bool,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Forgets a subscription (its push service says it is gone).
    fn drop_push(&self, turn_id: uuid::Uuid, endpoint: String) -> BoxFuture<'_, DbResult<()>>;

    /// Sets how many turns ahead count as "near" at a store (notifications). `NotFound` when
    /// the store does not exist.
    fn set_turns_ahead(&self, store_id: String, turns: u32) -> BoxFuture<'_, DbResult<()>>;

    /// The store's business day, "near" threshold, and today's identified turns whose customer
    /// consented to turn notices by SMS (`turn_sms`, latest choice), has a phone and was not
    /// told yet; forgets the messages of other days.
    fn sms_due(
        &self,
        store_id: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<(String, u32, Vec<super::phone::SmsCandidate>)>>;

    /// Records that a turn's customer was told by SMS; false if that was recorded already (a
    /// replica got there first: do not send).
    fn mark_sms_sent(
        &self,
        turn_id: uuid::Uuid,
        store_id: String,
        business_day: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Who is in store `store_id` now ([`super::presence`]): customers waiting by segment,
    /// segment weights, dwell per segment, people counted, signage plays by audience,
    /// assistance requests and response times. `NotFound` when the store does not exist.
    fn presence(
        &self,
        store_id: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<super::presence::StorePresence>>;
}

/// A shared database handle.
pub type SharedDb = Arc<dyn Database>;
