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

    /// Counts an attempt of `key` under `limit` ([`super::limits`], shared by every replica)
    /// unless its window is used up: `Some(seconds to wait)` then, nothing counted.
    fn rate_take(
        &self,
        limit: super::limits::RateLimit,
        key: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<Option<u64>>>;

    /// `Some(seconds to wait)` when `key` used up its attempts under `limit` (nothing counted).
    fn rate_blocked(
        &self,
        limit: super::limits::RateLimit,
        key: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<Option<u64>>>;

    /// Gives back an attempt [`Database::rate_take`] counted (it succeeded).
    fn rate_refund(
        &self,
        limit: super::limits::RateLimit,
        key: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Tells every replica's live streams that `store_id` changed (PostgreSQL `NOTIFY` on
    /// [`super::CHANGES_CHANNEL`]; nothing on SQLite, one process). `payload` is what
    /// [`Database::listen_changes`] yields on the other replicas.
    fn publish_change(&self, payload: String) -> BoxFuture<'_, DbResult<()>>;

    /// The changes other replicas publish, on a connection of its own (`LISTEN`); `None` when
    /// the database serves one process (SQLite). The stream ends when that connection is lost.
    fn listen_changes(
        &self,
    ) -> BoxFuture<'_, DbResult<Option<futures::stream::BoxStream<'static, String>>>>;
    /// Stores a signed release and its package (false: this very package was already stored;
    /// another package under the same version and arch is refused).
    fn put_release(&self, release: super::releases::NewRelease) -> BoxFuture<'_, DbResult<bool>>;

    /// A stored release's manifest and signature.
    fn release(
        &self,
        version: String,
        arch: String,
    ) -> BoxFuture<'_, DbResult<Option<kiosk_protocol::release::SignedRelease>>>;

    /// Chunk `idx` of a stored package ([`super::releases::CHUNK_BYTES`] each, the last shorter).
    fn release_chunk(
        &self,
        version: String,
        arch: String,
        idx: u64,
    ) -> BoxFuture<'_, DbResult<Option<Vec<u8>>>>;

    /// Every stored release with its rollout and what kiosks reported, newest first.
    fn releases(&self) -> BoxFuture<'_, DbResult<Vec<super::releases::ReleaseSummary>>>;

    /// Starts or changes a rollout (clearing a halt).
    fn set_rollout(
        &self,
        rollout: super::releases::Rollout,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Pins a kiosk to a release (`None`: unpins it).
    fn pin_kiosk(
        &self,
        kiosk_id: String,
        pin: Option<super::releases::Pin>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// The release a kiosk should run (halting rollouts past their failure threshold).
    fn release_for_kiosk(
        &self,
        ask: super::releases::ReleaseAsk,
    ) -> BoxFuture<'_, DbResult<super::releases::Assigned>>;

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

    /// Customers matching a search, at most [`super::customers::MAX_HITS`].
    fn search_customers(
        &self,
        query: super::customers::CustomerSearch,
    ) -> BoxFuture<'_, DbResult<Vec<super::customers::CustomerHit>>>;

    /// Everything stored about a card token besides its profile row, in one snapshot.
    fn customer_history(
        &self,
        token: CardToken,
    ) -> BoxFuture<'_, DbResult<super::customers::CustomerHistory>>;

    /// The kiosk that sent each consent change of a customer: (purpose, at_ms, kiosk id).
    fn consent_kiosks(
        &self,
        token: CardToken,
    ) -> BoxFuture<'_, DbResult<Vec<super::customers::ConsentKiosk>>>;

    /// Corrects a customer's name, email, phone or locale and sends the profile to the kiosks
    /// and `customer.updated` to the forwarding endpoints; false when there is no such customer.
    fn correct_customer(
        &self,
        token: CardToken,
        correction: super::customers::CustomerCorrection,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Creates or updates every customer as [`Database::upsert_customer`] does, all in one
    /// transaction: any failure imports none.
    fn import_customers(
        &self,
        customers: Vec<NewCustomer>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<u64>>;

    /// A kiosk polled its feed from `cursor` (it has applied every change up to it).
    fn record_feed_poll(
        &self,
        kiosk_id: String,
        cursor: u64,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// How far the erasure of a card token has reached the kiosks (`None`: never erased).
    fn erasure_status(
        &self,
        token: CardToken,
    ) -> BoxFuture<'_, DbResult<Option<super::customers::ErasureStatus>>>;

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

    /// The retention policy of this tenant ([`super::storage`]).
    fn retention(&self) -> BoxFuture<'_, DbResult<super::storage::RetentionPolicy>>;

    /// Sets how long `class` is kept (`None`: forever); `Refused` outside 1 to
    /// [`super::storage::MAX_RETENTION_DAYS`] days.
    fn set_retention(
        &self,
        class: super::storage::DataClass,
        days: Option<u32>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Up to a few hundred customers whose last visit (or registration) is before `cutoff_ms`.
    fn customers_past(&self, cutoff_ms: i64) -> BoxFuture<'_, DbResult<Vec<CardToken>>>;

    /// Erases `tokens` as [`Database::erase_customer`] does, in one transaction.
    fn erase_customers(&self, tokens: Vec<CardToken>, now_ms: i64) -> BoxFuture<'_, DbResult<u64>>;

    /// Deletes the per-turn figures of turns and the daily roll-ups before `cutoff_ms`:
    /// (turns, roll-ups).
    fn delete_aggregates_before(&self, cutoff_ms: i64) -> BoxFuture<'_, DbResult<(u64, u64)>>;

    /// Moves back the roll-up marks of stores that late events reached ([`super::rollup`]).
    fn reopen_late_days(&self, now_ms: i64) -> BoxFuture<'_, DbResult<Vec<String>>>;

    /// Rolls up the next days of `store_id` (at most [`super::rollup::DAYS_PER_STEP`]); how many.
    fn roll_up_store(&self, store_id: String, now_ms: i64) -> BoxFuture<'_, DbResult<u64>>;

    /// The events part of the storage job: PostgreSQL creates the partitions of this month and
    /// the next ones, and drops the months wholly before `cutoff_ms`; SQLite deletes the events
    /// received before it.
    fn maintain_events(
        &self,
        cutoff_ms: Option<i64>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<super::storage::StorageReport>>;

    /// A setting (`alert_thresholds`, `alert_webhook`).
    fn setting(&self, key: &'static str) -> BoxFuture<'_, DbResult<Option<String>>>;

    /// Sets or (`None`) removes a setting.
    fn set_setting(&self, key: &'static str, value: Option<String>) -> BoxFuture<'_, DbResult<()>>;

    /// What the alert evaluation reads ([`crate::alerts`]); dead letters since `dead_since_ms`.
    fn alert_inputs(
        &self,
        dead_since_ms: i64,
    ) -> BoxFuture<'_, DbResult<super::alerts::AlertInputs>>;

    /// Opens, keeps and resolves alerts to match `conditions` at `now_ms`, queueing a webhook
    /// message (built by `message`) per opening and resolution when `webhook`; one transaction.
    fn reconcile_alerts(
        &self,
        conditions: Vec<super::alerts::Condition>,
        now_ms: i64,
        webhook: bool,
        message: fn(&super::alerts::AlertRecord, bool, i64) -> (String, String),
    ) -> BoxFuture<'_, DbResult<super::alerts::AlertChanges>>;

    /// The unresolved alerts, and those resolved since `resolved_since_ms`, newest first.
    fn alerts(
        &self,
        resolved_since_ms: Option<i64>,
    ) -> BoxFuture<'_, DbResult<Vec<super::alerts::AlertRecord>>>;

    /// Claims the webhook messages due at `now_ms` (at most `limit`) for `lease_ms`.
    fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<super::alerts::Delivery>>>;

    /// Records how sending message `id` went.
    fn finish_delivery(
        &self,
        id: String,
        outcome: super::alerts::DeliveryOutcome,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Every store with its open alerts (store order).
    fn fleet(&self) -> BoxFuture<'_, DbResult<Vec<super::alerts::FleetStore>>>;

    /// Stores a new forwarding endpoint ([`crate::forward`]).
    fn forward_create_endpoint(
        &self,
        endpoint: super::forward::NewEndpoint,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Every forwarding endpoint with its message counts.
    fn forward_endpoints(&self) -> BoxFuture<'_, DbResult<Vec<super::forward::EndpointView>>>;

    /// One forwarding endpoint.
    fn forward_endpoint(
        &self,
        id: String,
    ) -> BoxFuture<'_, DbResult<Option<super::forward::EndpointView>>>;

    /// Enables or disables an endpoint by hand; false when there is none.
    fn forward_set_enabled(
        &self,
        id: String,
        enabled: bool,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Deletes an endpoint and its messages; false when there is none.
    fn forward_delete_endpoint(&self, id: String) -> BoxFuture<'_, DbResult<bool>>;

    /// Claims due forwarding messages (one transaction; see [`super::forward::claim`]).
    fn forward_claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<super::forward::Claimed>>>;

    /// Records an attempt's outcome (one transaction); true when it disabled the endpoint.
    fn forward_finish(
        &self,
        endpoint_id: String,
        seq: i64,
        outcome: super::forward::ForwardOutcome,
        rule: super::forward::DisableRule,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Dead letters, newest first (of one endpoint, or all).
    fn forward_dead_letters(
        &self,
        endpoint_id: Option<String>,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<super::forward::DeadLetter>>>;

    /// Deletes delivered forwarding messages delivered before `before_ms`; how many.
    fn forward_purge_delivered(&self, before_ms: i64) -> BoxFuture<'_, DbResult<u64>>;

    /// Sends dead letters again (one by `seq`, or all of the endpoint's); how many.
    fn forward_replay(
        &self,
        endpoint_id: String,
        seq: Option<i64>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<u64>>;

    /// The event partitions (`events_pYYYYMM`, oldest first; none on SQLite).
    fn event_partitions(&self) -> BoxFuture<'_, DbResult<Vec<String>>>;

    /// Runs the storage job once at `now_ms` ([`super::storage`]): event partitions ahead,
    /// then each class's retention.
    fn maintain_storage(
        &self,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<super::storage::StorageReport>> {
        use super::storage::DataClass;
        Box::pin(async move {
            let policy = self.retention().await?;
            let mut report = self
                .maintain_events(policy.cutoff_ms(DataClass::Events, now_ms), now_ms)
                .await?;
            if let Some(cutoff) = policy.cutoff_ms(DataClass::Personal, now_ms) {
                loop {
                    let tokens = self.customers_past(cutoff).await?;
                    if tokens.is_empty() {
                        break;
                    }
                    report.customers_erased += self.erase_customers(tokens, now_ms).await?;
                }
                if report.customers_erased > 0 {
                    self.purge_erased().await?;
                }
            }
            if let Some(cutoff) = policy.cutoff_ms(DataClass::Aggregates, now_ms) {
                (report.turns_deleted, report.rollups_deleted) =
                    self.delete_aggregates_before(cutoff).await?;
            }
            self.reopen_late_days(now_ms).await?;
            for store in self.list_stores().await? {
                loop {
                    let days = self.roll_up_store(store.id.clone(), now_ms).await?;
                    report.days_rolled_up += days;
                    if days == 0 {
                        break;
                    }
                }
            }
            Ok(report)
        })
    }

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

    /// Every store with its place (region and coordinates), by id.
    fn store_places(&self) -> BoxFuture<'_, DbResult<Vec<super::places::StorePlace>>>;

    /// Sets a store's region and coordinates ([`super::places::PlaceUpdate::check`] passed);
    /// `NotFound` when the store does not exist.
    fn set_store_place(
        &self,
        store_id: String,
        place: super::places::PlaceUpdate,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Every store's place and the rows of its figures over its last `days` local days up to
    /// `now_ms` (the dashboard's rows, roll-ups included), in one read snapshot.
    fn store_periods(
        &self,
        days: u32,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<Vec<(super::places::StorePlace, super::dashboard::WindowRows)>>>;

    /// Appends a line to the operator's audit log.
    fn audit(&self, entry: AuditEntry) -> BoxFuture<'_, DbResult<()>>;

    /// The audit log from `since_ms`, newest first, at most `limit` lines; only account
    /// `user`'s lines when given.
    fn audit_log(
        &self,
        since_ms: i64,
        limit: i64,
        user: Option<String>,
    ) -> BoxFuture<'_, DbResult<Vec<AuditEntry>>>;

    /// Creates a console account; false (nothing changed) when the name is taken. `NotFound`
    /// when a store manager's store does not exist.
    fn add_account(
        &self,
        account: super::accounts::NewAccount,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Every console account, by name (no password hashes).
    fn accounts(&self) -> BoxFuture<'_, DbResult<Vec<crate::accounts::Account>>>;

    /// An account with its password's PHC string (the login).
    fn account_credentials(
        &self,
        name: String,
    ) -> BoxFuture<'_, DbResult<Option<(crate::accounts::Account, String)>>>;

    /// Changes an account (role, disabled, password) and ends its sessions, in one
    /// transaction; false when there is no such account.
    fn change_account(
        &self,
        name: String,
        change: super::accounts::AccountChange,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Whether any account is enabled.
    fn any_account(&self) -> BoxFuture<'_, DbResult<bool>>;

    /// Opens a session (the SHA-256 of its secret) of account `user` until `expires_ms`.
    fn open_session(
        &self,
        id_hash: String,
        user: String,
        now_ms: i64,
        expires_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// The enabled account of an unexpired session, with the session's expiry (unix ms).
    fn session(
        &self,
        id_hash: String,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<Option<(crate::accounts::Account, i64)>>>;

    /// Ends a session.
    fn end_session(&self, id_hash: String) -> BoxFuture<'_, DbResult<()>>;

    /// A report over whole local days of the query's stores (see [`super::report`]), in one
    /// read snapshot: the daily roll-ups where they exist, raw rows for the other days.
    fn report(
        &self,
        query: super::report::ReportQuery,
    ) -> BoxFuture<'_, DbResult<super::report::Report>>;

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
