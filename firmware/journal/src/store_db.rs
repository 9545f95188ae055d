//! The store layer's rows: every kiosk's queue steps ([`StoreOp`]), the store's number counters
//! and which of this kiosk's conflicts were reported. See `kiosk_store` for the rules.

use kiosk_core::queue::ServiceDay;
use kiosk_protocol::CardToken;
use kiosk_protocol::events::Event;
use kiosk_store::StoreOp;
use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::db::{DbError, KioskDb};
use crate::{Appended, JournalTx, store_op_aad};

/// Which number series a counter row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// The store's sequence (kept by the sequencer).
    Store,
    /// This kiosk's own block while cut off from the sequencer.
    Tagged,
}

/// Counter row of this kiosk's own op sequence.
const OWN_SEQ: &str = "store:own_seq";

fn counter_name(series: Series, day: ServiceDay, service: &str) -> String {
    match series {
        Series::Store => format!("store:{day}:{service}"),
        Series::Tagged => format!("tag:{day}:{service}"),
    }
}

/// Counter row marking a redeemed coupon (1 once redeemed at any kiosk or counter of the store).
fn coupon_counter(code: &str) -> String {
    format!("coupon:{}", code.trim().to_uppercase())
}

/// The start of the counter rows of a card holder's coupons, one per campaign: named by a
/// digest of the card token (the counters table is not sealed), so an erasure deletes them all.
pub(crate) fn customer_coupons_prefix(token: &CardToken) -> String {
    let d = Sha256::digest(format!("kiosk coupons of v1\n{}", token.as_str()));
    let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("coupons-of:{hex}:")
}

/// Counter row of how many coupons of `campaign` the store handed a card holder (every kiosk
/// counts the `issue` ops that carry one, its own and its peers', each once).
fn customer_coupon_counter(token: &CardToken, campaign: &str) -> String {
    format!("{}{campaign}", customer_coupons_prefix(token))
}

fn corrupt(what: &'static str) -> impl Fn(rusqlite::Error) -> DbError {
    move |e| DbError::Corrupt {
        what,
        message: e.to_string(),
    }
}

fn insert_op(tx: &mut JournalTx<'_>, op: &StoreOp, opening: time::Time) -> Result<bool, DbError> {
    let json = serde_json::to_vec(op).map_err(|e| DbError::Corrupt {
        what: "store op",
        message: e.to_string(),
    })?;
    let seq = i64::try_from(op.seq).unwrap_or(i64::MAX);
    let sealed = tx.seal(&json, store_op_aad(&op.origin, seq).as_bytes());
    let day = ServiceDay::at(op.at, opening).to_string();
    if let kiosk_store::Step::Redeem { code, .. } = &op.step {
        // Kept past the ops' pruning: a coupon is valid for days, and used once.
        tx.counter_raise(&coupon_counter(code), 1)?;
    }
    let n = tx
        .sql()
        .execute(
            "INSERT INTO store_ops (origin, seq, hlc, business_day, body) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(origin, seq) DO NOTHING",
            params![
                op.origin,
                seq,
                i64::try_from(op.hlc).unwrap_or(i64::MAX),
                day,
                sealed
            ],
        )
        .map_err(corrupt("store op"))?;
    if let kiosk_store::Step::Issue {
        card_token: Some(token),
        campaign_id: Some(campaign),
        coupon: true,
        ..
    } = &op.step
        && n == 1
    {
        // Kept past the ops' pruning, counted once per op: a campaign's limit spans its days.
        tx.counter_next(&customer_coupon_counter(token, campaign))?;
    }
    Ok(n == 1)
}

impl KioskDb {
    /// Hands out the next number of a series, durably: one past the highest of the persisted
    /// counter and `seen` (the highest number the kiosk saw issued in the store's turns).
    pub fn next_store_number(
        &self,
        series: Series,
        day: ServiceDay,
        service: &str,
        seen: u32,
    ) -> Result<u32, DbError> {
        let name = counter_name(series, day, service);
        self.journal().transaction(|tx| {
            let current: i64 = tx
                .sql()
                .query_row(
                    "SELECT coalesce((SELECT value FROM counters WHERE name = ?1), 0)",
                    [&name],
                    |r| r.get(0),
                )
                .map_err(corrupt("store number"))?;
            let next = current.max(i64::from(seen)) + 1;
            let number = u32::try_from(next).map_err(|_| DbError::Corrupt {
                what: "store number",
                message: format!("{name} is exhausted"),
            })?;
            tx.counter_raise(&name, next)?;
            Ok::<_, DbError>(number)
        })
    }

    /// Whether this kiosk ever persisted a number of `series` for `day` (a sequencer that has
    /// not, and has not heard from its peers, may have lost its disk).
    pub fn has_store_numbers(&self, series: Series, day: ServiceDay) -> Result<bool, DbError> {
        let prefix = counter_name(series, day, "");
        let n: i64 = self
            .journal()
            .sql()
            .query_row(
                "SELECT count(*) FROM counters WHERE substr(name, 1, length(?1)) = ?1",
                [&prefix],
                |r| r.get(0),
            )
            .map_err(corrupt("store number"))?;
        Ok(n > 0)
    }

    /// Commits one of this kiosk's own queue steps with its events, in one transaction.
    pub fn commit_store_op(
        &self,
        op: &StoreOp,
        events: &[Event],
        opening: time::Time,
    ) -> Result<Vec<Appended>, DbError> {
        let appended = self.journal().transaction(|tx| {
            if !insert_op(tx, op, opening)? {
                return Err(DbError::Corrupt {
                    what: "store op",
                    message: format!("op {}:{} already exists", op.origin, op.seq),
                });
            }
            tx.counter_raise(OWN_SEQ, i64::try_from(op.seq).unwrap_or(i64::MAX))?;
            let mut out = Vec::with_capacity(events.len());
            for e in events {
                out.push(tx.append(e.clone())?);
            }
            Ok::<_, DbError>(out)
        })?;
        if !appended.is_empty() {
            self.notify_appended();
        }
        Ok(appended)
    }

    /// Whether a coupon was redeemed in this store (its `redeem` op seen here, own or a peer's),
    /// also after the op itself was pruned.
    pub fn coupon_used(&self, code: &str) -> Result<bool, DbError> {
        Ok(self.journal().counter(&coupon_counter(code))? > 0)
    }

    /// How many coupons of `campaign` the store handed the holder of `token`, as far as this
    /// kiosk knows (its own issues and those its peers' ops brought, also after the ops were
    /// pruned).
    pub fn coupons_issued(&self, token: &CardToken, campaign: &str) -> Result<u32, DbError> {
        let n = self
            .journal()
            .counter(&customer_coupon_counter(token, campaign))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The sequence of this kiosk's latest own op (kept apart from the ops, which are pruned:
    /// a sequence is never reused).
    pub fn own_store_seq(&self) -> Result<u64, DbError> {
        let v = self.journal().counter(OWN_SEQ)?;
        Ok(u64::try_from(v).unwrap_or(0))
    }

    /// Stores ops pulled from peers (those already held are skipped); returns how many were new.
    pub fn insert_store_ops(&self, ops: &[StoreOp], opening: time::Time) -> Result<usize, DbError> {
        if ops.is_empty() {
            return Ok(0);
        }
        self.journal().transaction(|tx| {
            let mut n = 0;
            for op in ops {
                if insert_op(tx, op, opening)? {
                    n += 1;
                }
            }
            Ok::<_, DbError>(n)
        })
    }

    /// The ops of service days from `from` on, every kiosk's, in no particular order.
    pub fn load_store_ops(&self, from: ServiceDay) -> Result<Vec<StoreOp>, DbError> {
        let j = self.journal();
        let mut st = j
            .sql()
            .prepare("SELECT origin, seq, body FROM store_ops WHERE business_day >= ?1")
            .map_err(corrupt("store ops"))?;
        let rows = st
            .query_map([from.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(corrupt("store ops"))?;
        let mut out = Vec::new();
        for row in rows {
            let (origin, seq, body) = row.map_err(corrupt("store ops"))?;
            let plain = j
                .open_sealed(&body, store_op_aad(&origin, seq).as_bytes())
                .map_err(|e| DbError::Corrupt {
                    what: "store op",
                    message: e.to_string(),
                })?;
            let op: StoreOp = serde_json::from_slice(&plain).map_err(|e| DbError::Corrupt {
                what: "store op",
                message: e.to_string(),
            })?;
            out.push(op);
        }
        Ok(out)
    }

    /// Deletes ops of service days before `keep_from`.
    pub fn prune_store_ops(&self, keep_from: ServiceDay) -> Result<usize, DbError> {
        self.journal()
            .sql()
            .execute(
                "DELETE FROM store_ops WHERE business_day < ?1",
                [keep_from.to_string()],
            )
            .map_err(corrupt("store ops"))
    }

    /// Records that the conflict of this kiosk's op `(origin, seq)` was journaled; `false` when
    /// it already was.
    pub fn mark_conflict_reported(&self, origin: &str, seq: u64) -> Result<bool, DbError> {
        let n = self
            .journal()
            .sql()
            .execute(
                "INSERT INTO store_conflicts_reported (origin, seq) VALUES (?1, ?2) \
                 ON CONFLICT DO NOTHING",
                params![origin, i64::try_from(seq).unwrap_or(i64::MAX)],
            )
            .map_err(corrupt("store conflicts"))?;
        Ok(n == 1)
    }
}
