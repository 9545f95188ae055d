//! The `Database` methods both backends implement alike, as one macro over their four ways of
//! running shared logic.

/// The [`super::database::Database`] methods both backends implement alike: each runs a function of this
/// module through the backend's `auto` (a statement or a few, no transaction of their own),
/// `read` (the read path of every kiosk request), `write` (one transaction) or `snapshot` (one
/// read-only snapshot); `remember_signature` names the mode of remembering a kiosk request's
/// signature (SQLite: one transaction, one commit; PostgreSQL: no transaction of its own).
/// Expanded inside each backend's `impl Database` (a macro, not a generic impl, so that
/// PostgreSQL's futures are seen to be `Send` for its concrete executor).
macro_rules! shared_methods {
    (remember_signature: $remember:ident) => {
        fn remember_signature(
            &self,
            signature: String,
            expires_ms: i64,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            let guard = $crate::db::model::ReplayGuard {
                signature,
                expires_ms,
                now_ms,
            };
            self.$remember(move |e| {
                Box::pin(async move { $crate::db::shared::remember(e, &guard).await })
            })
        }

        fn rate_take(
            &self,
            limit: $crate::db::limits::RateLimit,
            key: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<u64>>> {
            self.write(move |e| Box::pin($crate::db::limits::take(e, limit, key, now_ms)))
        }

        fn rate_blocked(
            &self,
            limit: $crate::db::limits::RateLimit,
            key: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<u64>>> {
            self.auto(move |e| Box::pin($crate::db::limits::blocked(e, limit, key, now_ms)))
        }

        fn rate_refund(
            &self,
            limit: $crate::db::limits::RateLimit,
            key: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::limits::refund(e, limit, key, now_ms)))
        }

        fn tenant_key(
            &self,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<kiosk_protocol::wire::TenantKey>>
        {
            self.auto(|e| Box::pin($crate::db::shared::tenant_key(e)))
        }

        fn set_tenant_key_if_unused(
            &self,
            key: kiosk_protocol::wire::TenantKey,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.auto(move |e| Box::pin($crate::db::shared::set_tenant_key_if_unused(e, key)))
        }

        fn upsert_store(
            &self,
            store: $crate::db::model::StoreRecord,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::shared::upsert_store(e, store)))
        }

        fn store(
            &self,
            id: String,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<$crate::db::model::StoreRecord>>>
        {
            self.auto(move |e| Box::pin($crate::db::shared::store(e, id)))
        }

        fn create_enroll_code(
            &self,
            code_hash: String,
            store_id: String,
            expires_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| {
                Box::pin($crate::db::shared::create_enroll_code(
                    e, code_hash, store_id, expires_ms,
                ))
            })
        }

        fn redeem_enroll_code(
            &self,
            code_hash: String,
            now_ms: i64,
            kiosk: $crate::db::model::NewKiosk,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<$crate::db::model::StoreRecord>>>
        {
            self.write(move |e| {
                Box::pin($crate::db::shared::redeem_enroll_code(
                    e, code_hash, now_ms, kiosk,
                ))
            })
        }

        fn kiosk(
            &self,
            kiosk_id: String,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<$crate::db::model::KioskRecord>>>
        {
            self.read(move |e| Box::pin($crate::db::shared::kiosk(e, kiosk_id)))
        }

        fn put_release(
            &self,
            release: $crate::db::releases::NewRelease,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| Box::pin($crate::db::releases::put_release(e, release)))
        }

        fn release(
            &self,
            version: String,
            arch: String,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Option<kiosk_protocol::release::SignedRelease>>,
        > {
            self.auto(move |e| Box::pin($crate::db::releases::release(e, version, arch)))
        }

        fn release_chunk(
            &self,
            version: String,
            arch: String,
            idx: u64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<Vec<u8>>>> {
            self.auto(move |e| {
                Box::pin($crate::db::releases::release_chunk(e, version, arch, idx))
            })
        }

        fn releases(
            &self,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Vec<$crate::db::releases::ReleaseSummary>>,
        > {
            self.auto(|e| Box::pin($crate::db::releases::releases(e)))
        }

        fn set_rollout(
            &self,
            rollout: $crate::db::releases::Rollout,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.write(move |e| Box::pin($crate::db::releases::set_rollout(e, rollout, now_ms)))
        }

        fn pin_kiosk(
            &self,
            kiosk_id: String,
            pin: Option<$crate::db::releases::Pin>,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.write(move |e| {
                Box::pin($crate::db::releases::pin_kiosk(e, kiosk_id, pin, now_ms))
            })
        }

        fn release_for_kiosk(
            &self,
            ask: $crate::db::releases::ReleaseAsk,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<$crate::db::releases::Assigned>,
        > {
            self.write(move |e| Box::pin($crate::db::releases::release_for_kiosk(e, ask)))
        }

        fn touch_kiosk(
            &self,
            kiosk_id: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::shared::touch_kiosk(e, kiosk_id, now_ms)))
        }

        fn event_count(&self) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<u64>> {
            self.auto(|e| Box::pin($crate::db::shared::event_count(e)))
        }

        fn feed(
            &self,
            store_id: String,
            cursor: u64,
            limit: u32,
            feed_version: u32,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::model::FeedPage>> {
            self.auto(move |e| {
                Box::pin($crate::db::shared::feed(e, store_id, cursor, limit, feed_version))
            })
        }

        fn lookup_profile(
            &self,
            store_id: String,
            token: kiosk_protocol::CardToken,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Option<kiosk_protocol::wire::Profile>>,
        > {
            self.write(move |e| Box::pin($crate::db::shared::lookup_profile(e, store_id, token)))
        }

        fn upsert_campaign(
            &self,
            campaign: kiosk_protocol::wire::Campaign,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.write(move |e| Box::pin($crate::db::shared::upsert_campaign(e, campaign, now_ms)))
        }

        fn set_store_config(
            &self,
            store_id: String,
            parts: kiosk_protocol::store_config::StoreConfigParts,
            now_ms: i64,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<kiosk_protocol::store_config::StoreConfig>,
        > {
            self.write(move |e| {
                Box::pin($crate::db::shared::set_store_config(e, store_id, parts, now_ms))
            })
        }

        fn store_config(
            &self,
            store_id: String,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Option<kiosk_protocol::store_config::StoreConfig>>,
        > {
            self.auto(move |e| Box::pin($crate::db::shared::store_config(e, store_id)))
        }

        fn kiosk_configs(
            &self,
            store_id: String,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<
                std::collections::BTreeMap<String, $crate::db::dashboard::KioskConfigState>,
            >,
        > {
            self.auto(move |e| Box::pin(async move { $crate::db::shared::kiosk_configs(e, &store_id).await }))
        }

        fn campaigns(
            &self,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Vec<kiosk_protocol::wire::Campaign>>,
        > {
            self.auto(|e| Box::pin($crate::db::shared::campaigns(e)))
        }

        fn customer(
            &self,
            token: kiosk_protocol::CardToken,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Option<$crate::db::model::CustomerRecord>>,
        > {
            self.auto(move |e| Box::pin($crate::db::shared::customer(e, token)))
        }

        fn search_customers(
            &self,
            query: $crate::db::customers::CustomerSearch,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Vec<$crate::db::customers::CustomerHit>>,
        > {
            self.auto(move |e| Box::pin($crate::db::customers::search(e, query)))
        }

        fn customer_history(
            &self,
            token: kiosk_protocol::CardToken,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<$crate::db::customers::CustomerHistory>,
        > {
            self.snapshot(move |e| Box::pin($crate::db::customers::history(e, token)))
        }

        fn consent_kiosks(
            &self,
            token: kiosk_protocol::CardToken,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Vec<$crate::db::customers::ConsentKiosk>>,
        > {
            self.auto(move |e| {
                Box::pin(async move { $crate::db::customers::consent_kiosks(e, &token).await })
            })
        }

        fn correct_customer(
            &self,
            token: kiosk_protocol::CardToken,
            correction: $crate::db::customers::CustomerCorrection,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| {
                Box::pin($crate::db::customers::correct(e, token, correction, now_ms))
            })
        }

        fn import_customers(
            &self,
            customers: Vec<$crate::db::model::NewCustomer>,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<u64>> {
            self.write(move |e| Box::pin($crate::db::customers::import(e, customers, now_ms)))
        }

        fn record_feed_poll(
            &self,
            kiosk_id: String,
            cursor: u64,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| {
                Box::pin($crate::db::customers::record_feed_poll(e, kiosk_id, cursor, now_ms))
            })
        }

        fn erasure_status(
            &self,
            token: kiosk_protocol::CardToken,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Option<$crate::db::customers::ErasureStatus>>,
        > {
            self.auto(move |e| Box::pin($crate::db::customers::erasure_status(e, token)))
        }

        fn set_segment(
            &self,
            token: kiosk_protocol::CardToken,
            segment: Option<String>,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| {
                Box::pin($crate::db::shared::set_segment(e, token, segment, now_ms))
            })
        }

        fn recompute_segments(
            &self,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<u64>> {
            self.write(move |e| Box::pin($crate::db::shared::recompute_segments(e, now_ms)))
        }

        fn upsert_customer(
            &self,
            customer: $crate::db::model::NewCustomer,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.write(move |e| Box::pin($crate::db::shared::upsert_customer(e, customer, now_ms)))
        }

        fn erase_customer(
            &self,
            token: kiosk_protocol::CardToken,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| Box::pin($crate::db::shared::erase_customer(e, token, now_ms)))
        }

        fn stats(
            &self,
            store_id: String,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::model::StoreStats>> {
            self.auto(move |e| Box::pin($crate::db::shared::stats(e, store_id)))
        }

        fn audit(
            &self,
            entry: $crate::db::model::AuditEntry,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::shared::audit(e, entry)))
        }

        fn audit_log(
            &self,
            since_ms: i64,
            limit: i64,
            user: Option<String>,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::model::AuditEntry>>> {
            self.auto(move |e| Box::pin($crate::db::shared::audit_log(e, since_ms, limit, user)))
        }

        fn add_account(
            &self,
            account: $crate::db::accounts::NewAccount,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| Box::pin($crate::db::accounts::add_account(e, account, now_ms)))
        }

        fn accounts(
            &self,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::accounts::Account>>> {
            self.auto(|e| Box::pin($crate::db::accounts::accounts(e)))
        }

        fn account_credentials(
            &self,
            name: String,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Option<($crate::accounts::Account, String)>>,
        > {
            self.auto(move |e| Box::pin($crate::db::accounts::credentials(e, name)))
        }

        fn change_account(
            &self,
            name: String,
            change: $crate::db::accounts::AccountChange,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| {
                Box::pin($crate::db::accounts::change_account(e, name, change, now_ms))
            })
        }

        fn any_account(&self) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.auto(|e| Box::pin($crate::db::accounts::any_account(e)))
        }

        fn open_session(
            &self,
            id_hash: String,
            user: String,
            now_ms: i64,
            expires_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.write(move |e| {
                Box::pin($crate::db::accounts::open_session(
                    e, id_hash, user, now_ms, expires_ms,
                ))
            })
        }

        fn session(
            &self,
            id_hash: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Option<($crate::accounts::Account, i64)>>,
        > {
            self.read(move |e| Box::pin($crate::db::accounts::session(e, id_hash, now_ms)))
        }

        fn end_session(
            &self,
            id_hash: String,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::accounts::end_session(e, id_hash)))
        }

        fn set_store_timezone(
            &self,
            store_id: String,
            timezone: Option<String>,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| {
                Box::pin($crate::db::shared::set_store_timezone(e, store_id, timezone))
            })
        }

        fn list_stores(
            &self,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::dashboard::StoreSummary>>>
        {
            self.auto(|e| Box::pin($crate::db::shared::list_stores(e)))
        }

        fn store_places(
            &self,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::places::StorePlace>>>
        {
            self.auto(|e| Box::pin($crate::db::places::store_places(e)))
        }

        fn set_store_place(
            &self,
            store_id: String,
            place: $crate::db::places::PlaceUpdate,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.write(move |e| Box::pin($crate::db::places::set_store_place(e, store_id, place)))
        }

        fn store_periods(
            &self,
            days: u32,
            now_ms: i64,
        ) -> futures::future::BoxFuture<
            '_,
            $crate::db::model::DbResult<Vec<($crate::db::places::StorePlace, $crate::db::dashboard::WindowRows)>>,
        > {
            self.snapshot(move |e| Box::pin($crate::db::places::store_periods(e, days, now_ms)))
        }

        fn report(
            &self,
            query: $crate::db::report::ReportQuery,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::report::Report>> {
            self.snapshot(move |e| Box::pin($crate::db::report::report(e, query)))
        }

        fn dashboard(
            &self,
            query: $crate::db::dashboard::DashboardQuery,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::dashboard::Dashboard>> {
            self.snapshot(move |e| Box::pin($crate::db::shared::dashboard(e, query)))
        }

        fn live_queue(
            &self,
            query: $crate::db::queue::LiveQueueQuery,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::queue::LiveQueue>> {
            self.snapshot(move |e| Box::pin($crate::db::shared::live_queue(e, query)))
        }

        fn survey_status(
            &self,
            store_id: String,
            turn_id: uuid::Uuid,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<kiosk_protocol::wire::SurveyStatus>> {
            self.auto(move |e| Box::pin($crate::db::shared::survey_status(e, store_id, turn_id)))
        }

        fn turn_view(
            &self,
            store_id: String,
            business_day: String,
            turn_id: uuid::Uuid,
            label: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<$crate::db::phone::TurnView>>> {
            self.snapshot(move |e| {
                Box::pin($crate::db::shared::turn_view(e, store_id, business_day, turn_id, label, now_ms))
            })
        }

        fn rate_turn(
            &self,
            store_id: String,
            answer: kiosk_protocol::events::SurveyAnswered,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<kiosk_protocol::wire::SurveyStatus>> {
            self.write(move |e| Box::pin($crate::db::shared::rate_turn(e, store_id, answer, now_ms)))
        }

        fn vapid_secret(
            &self,
            candidate: String,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<String>> {
            self.write(move |e| Box::pin($crate::db::shared::vapid_secret(e, candidate)))
        }

        fn subscribe_push(
            &self,
            store_id: String,
            business_day: String,
            target: $crate::db::phone::PushTarget,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| {
                Box::pin($crate::db::shared::subscribe_push(e, store_id, business_day, target, now_ms))
            })
        }

        fn push_subscriptions(
            &self,
            store_id: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<(String, u32, Vec<$crate::db::phone::PushTarget>)>> {
            self.write(move |e| Box::pin($crate::db::shared::push_subscriptions(e, store_id, now_ms)))
        }

        fn mark_push_sent(
            &self,
            turn_id: uuid::Uuid,
            endpoint: String,
            called: bool,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::shared::mark_push_sent(e, turn_id, endpoint, called)))
        }

        fn drop_push(
            &self,
            turn_id: uuid::Uuid,
            endpoint: String,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::shared::drop_push(e, turn_id, endpoint)))
        }

        fn set_turns_ahead(
            &self,
            store_id: String,
            turns: u32,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::shared::set_turns_ahead(e, store_id, turns)))
        }

        fn sms_due(
            &self,
            store_id: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<(String, u32, Vec<$crate::db::phone::SmsCandidate>)>> {
            self.write(move |e| Box::pin($crate::db::shared::sms_due(e, store_id, now_ms)))
        }

        fn presence(
            &self,
            store_id: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::presence::StorePresence>> {
            self.snapshot(move |e| Box::pin($crate::db::shared::presence(e, store_id, now_ms)))
        }

        fn mark_sms_sent(
            &self,
            turn_id: uuid::Uuid,
            store_id: String,
            business_day: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.auto(move |e| {
                Box::pin($crate::db::shared::mark_sms_sent(e, turn_id, store_id, business_day, now_ms))
            })
        }

        fn retention(
            &self,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::storage::RetentionPolicy>> {
            self.auto(|e| Box::pin($crate::db::storage::retention(e)))
        }

        fn set_retention(
            &self,
            class: $crate::db::storage::DataClass,
            days: Option<u32>,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::storage::set_retention(e, class, days, now_ms)))
        }

        fn customers_past(
            &self,
            cutoff_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<kiosk_protocol::CardToken>>> {
            self.auto(move |e| Box::pin($crate::db::storage::customers_past(e, cutoff_ms)))
        }

        fn erase_customers(
            &self,
            tokens: Vec<kiosk_protocol::CardToken>,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<u64>> {
            self.write(move |e| Box::pin($crate::db::storage::erase_all(e, tokens, now_ms)))
        }

        fn delete_aggregates_before(
            &self,
            cutoff_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<(u64, u64)>> {
            self.write(move |e| Box::pin($crate::db::storage::delete_aggregates_before(e, cutoff_ms)))
        }

        fn reopen_late_days(
            &self,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<String>>> {
            self.write(move |e| Box::pin($crate::db::rollup::reopen_late_days(e, now_ms)))
        }

        fn roll_up_store(
            &self,
            store_id: String,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<u64>> {
            self.write(move |e| Box::pin($crate::db::rollup::roll_up_store(e, store_id, now_ms)))
        }

        fn setting(
            &self,
            key: &'static str,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<String>>> {
            self.auto(move |e| Box::pin($crate::db::alerts::setting(e, key)))
        }

        fn set_setting(
            &self,
            key: &'static str,
            value: Option<String>,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::alerts::set_setting(e, key, value)))
        }

        fn alert_inputs(
            &self,
            dead_since_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::alerts::AlertInputs>> {
            self.snapshot(move |e| Box::pin($crate::db::alerts::inputs(e, dead_since_ms)))
        }

        fn reconcile_alerts(
            &self,
            conditions: Vec<$crate::db::alerts::Condition>,
            now_ms: i64,
            webhook: bool,
            message: fn(&$crate::db::alerts::AlertRecord, bool, i64) -> (String, String),
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<$crate::db::alerts::AlertChanges>> {
            self.write(move |e| {
                Box::pin($crate::db::alerts::reconcile(e, conditions, now_ms, webhook, message))
            })
        }

        fn alerts(
            &self,
            resolved_since_ms: Option<i64>,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::alerts::AlertRecord>>> {
            self.auto(move |e| Box::pin($crate::db::alerts::alerts(e, resolved_since_ms)))
        }

        fn claim_deliveries(
            &self,
            now_ms: i64,
            lease_ms: i64,
            limit: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::alerts::Delivery>>> {
            self.write(move |e| Box::pin($crate::db::alerts::claim_due(e, now_ms, lease_ms, limit)))
        }

        fn finish_delivery(
            &self,
            id: String,
            outcome: $crate::db::alerts::DeliveryOutcome,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.auto(move |e| Box::pin($crate::db::alerts::finish(e, id, outcome, now_ms)))
        }

        fn fleet(
            &self,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::alerts::FleetStore>>> {
            self.snapshot(|e| Box::pin($crate::db::alerts::fleet(e)))
        }

        fn forward_create_endpoint(
            &self,
            endpoint: $crate::db::forward::NewEndpoint,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<()>> {
            self.write(move |e| Box::pin($crate::db::forward::create_endpoint(e, endpoint, now_ms)))
        }

        fn forward_endpoints(
            &self,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::forward::EndpointView>>> {
            self.snapshot(|e| Box::pin($crate::db::forward::endpoints(e)))
        }

        fn forward_endpoint(
            &self,
            id: String,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Option<$crate::db::forward::EndpointView>>> {
            self.snapshot(move |e| Box::pin($crate::db::forward::endpoint(e, id)))
        }

        fn forward_set_enabled(
            &self,
            id: String,
            enabled: bool,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| Box::pin($crate::db::forward::set_enabled(e, id, enabled, now_ms)))
        }

        fn forward_delete_endpoint(
            &self,
            id: String,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| Box::pin($crate::db::forward::delete_endpoint(e, id)))
        }

        fn forward_claim(
            &self,
            now_ms: i64,
            lease_ms: i64,
            limit: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::forward::Claimed>>> {
            self.write(move |e| Box::pin($crate::db::forward::claim(e, now_ms, lease_ms, limit)))
        }

        fn forward_finish(
            &self,
            endpoint_id: String,
            seq: i64,
            outcome: $crate::db::forward::ForwardOutcome,
            rule: $crate::db::forward::DisableRule,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<bool>> {
            self.write(move |e| Box::pin($crate::db::forward::finish(e, endpoint_id, seq, outcome, rule, now_ms)))
        }

        fn forward_dead_letters(
            &self,
            endpoint_id: Option<String>,
            limit: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<Vec<$crate::db::forward::DeadLetter>>> {
            self.snapshot(move |e| Box::pin($crate::db::forward::dead_letters(e, endpoint_id, limit)))
        }

        fn forward_purge_delivered(
            &self,
            before_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<u64>> {
            self.write(move |e| Box::pin($crate::db::forward::purge_delivered(e, before_ms)))
        }

        fn forward_replay(
            &self,
            endpoint_id: String,
            seq: Option<i64>,
            now_ms: i64,
        ) -> futures::future::BoxFuture<'_, $crate::db::model::DbResult<u64>> {
            self.write(move |e| Box::pin($crate::db::forward::replay(e, endpoint_id, seq, now_ms)))
        }
    };
}
pub(crate) use shared_methods;
