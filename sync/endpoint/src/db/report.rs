//! The managers' reports (issue 21): what the stores did per local day, ISO week, month or whole
//! range, grouped per store, region, service, counter or staff member: tickets, waits and
//! service times (median, p90), no-shows and walkouts, NPS, campaign results.
//!
//! Data flow: `turns`, `events`, `daily_figures` (the dashboard's roll-ups, [`super::rollup`]) →
//! **report rows** (per store and local day: [`WindowRows`], the very rows the dashboard's
//! figures are made of) → [`assemble`] → `/dashboard/reports` (HTML, CSV, printable).
//!
//! The figures are the dashboard's ([`super::dashboard`]): the same rows, the same percentile
//! ([`percentile`](super::dashboard::percentile)), the same NPS and conversion, so a report
//! and the dashboard over the same days never disagree. Whole local days of each store, in its
//! time zone (UTC when unknown), are read from the daily roll-ups where they exist (a year is a
//! few hundred small rows per store) and from the raw rows otherwise. The roll-ups keep each
//! called turn's wait and service time, so the medians and 90th percentiles over a year are exact,
//! not averages of daily ones. They do not keep the counter nor the staff member: grouped per
//! counter or staff member, the report reads the raw turns of the range (`turns` joined with
//! `queue_turns`), one indexed query per store. A staff member is named as the newest store
//! configuration listing their id names them (someone who has left keeps their name in last
//! year's report); turns called by nobody in particular (the store-wide PIN, a script, a kiosk
//! older than per-staff PINs) form a row of their own.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::dashboard::{
    Durations, NpsFigures, WindowRows, durations, next_day_start_ms, nps_figures, start_of_day_ms,
};
use super::exec::{Exec, args};
use super::model::{DbResult, variant_stats};
use super::rollup::{rolled_days, window_rows};

/// The longest range a report covers, in days.
pub const MAX_DAYS: i32 = 366;

/// How the days are put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Each local day (`2026-03-02`).
    Day,
    /// Each ISO week, Monday to Sunday (`2026-W10`).
    Week,
    /// Each calendar month (`2026-03`).
    Month,
    /// The whole range in one (`2026-03-01 to 2026-03-31`).
    Range,
}

/// What each row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// Each store.
    Store,
    /// Each region (`stores.region`; stores without one are `(none)`).
    Region,
    /// Each service letter (of the turn's issue), all stores together.
    Service,
    /// Each store's counter: the counter that served the turn or marked it a no-show, else the
    /// counter of its latest call. Only called turns have one.
    Counter,
    /// Each store's staff member, chosen as the counter is: who served the turn or marked it a
    /// no-show, else who made its latest call (logged in with a PIN of their own).
    Staff,
}

impl Grouping {
    /// Whether rows are per called turn (counter, staff member): tickets are turns called,
    /// and there are no walkouts (a turn never called has neither).
    pub fn per_called_turn(self) -> bool {
        matches!(self, Grouping::Counter | Grouping::Staff)
    }
}

/// The group key of turns no staff member of their own called or served.
pub const NO_STAFF: &str = "(store PIN)";

/// A store as the reports know it: where it is ([`super::places`]).
pub use super::places::StorePlace;

/// What to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// First local day.
    pub from: Date,
    /// Last local day (inclusive).
    pub to: Date,
    /// Days per row.
    pub period: Period,
    /// Rows per what.
    pub grouping: Grouping,
    /// The stores covered (the caller filters them: what the user may see, a store, a region).
    pub stores: Vec<String>,
    /// Now, unix ms: days from the store's current one on are still open (no walkouts yet).
    pub now_ms: i64,
}

/// A called turn of one local day, with its counter and staff member (grouping per counter or
/// staff member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterTurn {
    /// Counter (`None`: no counter recorded).
    pub counter: Option<String>,
    /// Staff member's id (`None`: nobody logged in with a PIN of their own).
    pub staff: Option<String>,
    /// First call minus issue, ms.
    pub wait_ms: i64,
    /// Served minus first call, ms, when served.
    pub service_ms: Option<i64>,
}

/// What a backend reads for one store and local day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRows {
    /// The local day.
    pub date: Option<Date>,
    /// Whether the day had not ended by the start of the store's current day.
    pub open: bool,
    /// The day's figures (as the dashboard reads them).
    pub figures: WindowRows,
    /// Its called turns with their counters (grouping per counter only).
    pub counter_turns: Vec<CounterTurn>,
}

/// What a backend reads for a report.
#[derive(Debug, Clone, Default)]
pub struct ReportRows {
    /// The stores, each with its days.
    pub stores: Vec<(StorePlace, Vec<DayRows>)>,
    /// Campaign names by id.
    pub campaign_names: HashMap<String, String>,
    /// Staff members' names by store and id (grouping per staff member).
    pub staff_names: HashMap<(String, String), String>,
}

/// A report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    /// First local day, `YYYY-MM-DD`.
    pub from: String,
    /// Last local day, `YYYY-MM-DD`.
    pub to: String,
    /// Days per row.
    pub period: Period,
    /// Rows per what.
    pub grouping: Grouping,
    /// The stores covered.
    pub stores: Vec<StorePlace>,
    /// Tickets, waits, service times, no-shows and walkouts per period and group.
    pub queue: Vec<QueueRow>,
    /// NPS per period and group (per store when grouped by service or counter).
    pub nps: Vec<NpsRow>,
    /// Exposures, conversions and rate per period, group (per store when grouped by service or
    /// counter), campaign and variant.
    pub campaigns: Vec<CampaignRow>,
}

/// A row of the queue table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueRow {
    /// Period label (`2026-03-02`, `2026-W10`, `2026-03`, `2026-03-01 to 2026-03-31`).
    pub period: String,
    /// Group key: store id, region code (`(none)`), service letter, `store/counter`, or
    /// `store/staff id` (`store/(store PIN)` for turns no member of their own called).
    pub group: String,
    /// Group name: the store's name, else the key.
    pub group_name: String,
    /// Tickets issued (grouped per counter or staff member: turns called, as tickets carry
    /// neither).
    pub tickets: u64,
    /// Turns called at least once.
    pub called: u64,
    /// Called turns served.
    pub served: u64,
    /// No-shows: turns called at least once and never served.
    pub no_shows: u64,
    /// Walkouts: turns never called, of the days that have ended (`None` grouped per counter or
    /// staff member: a turn never called has neither).
    pub walkouts: Option<u64>,
    /// Issue to first call, of the called turns.
    pub wait: Option<Durations>,
    /// First call to served, of the served turns.
    pub service_time: Option<Durations>,
}

/// A row of the NPS table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NpsRow {
    /// Period label.
    pub period: String,
    /// Store id or region code.
    pub group: String,
    /// The store's name, else the key.
    pub group_name: String,
    /// The figures.
    pub nps: NpsFigures,
}

/// A row of the campaign table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CampaignRow {
    /// Period label.
    pub period: String,
    /// Store id or region code.
    pub group: String,
    /// The store's name, else the key.
    pub group_name: String,
    /// Campaign id.
    pub campaign_id: String,
    /// Campaign name, when known.
    pub campaign_name: Option<String>,
    /// Variant.
    pub variant: String,
    /// Exposures (as the dashboard counts them).
    pub shown: u64,
    /// Conversions (as the dashboard counts them).
    pub redeemed: u64,
    /// redeemed / shown (0 when never shown).
    pub conversion: f64,
}

/// The region key of stores without one.
pub const NO_REGION: &str = "(none)";

/// The label of the period `date` falls in.
pub fn period_label(period: Period, date: Date, from: Date, to: Date) -> String {
    match period {
        Period::Day => date.to_string(),
        Period::Week => {
            let w = date.iso_week_date();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        Period::Month => format!("{:04}-{:02}", date.year(), date.month()),
        Period::Range => format!("{from} to {to}"),
    }
}

/// The local days of `[from, to]` in `timezone` (UTC when unknown): `(date, start_ms, end_ms)`,
/// the end exclusive.
pub fn local_days(timezone: Option<&str>, from: Date, to: Date) -> Vec<(Date, i64, i64)> {
    let tz = timezone
        .and_then(|n| jiff::tz::TimeZone::get(n).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let mut out = Vec::new();
    let mut d = from;
    while d <= to && out.len() <= MAX_DAYS as usize {
        let Some(start) = d
            .to_zoned(tz.clone())
            .ok()
            .and_then(|z| z.start_of_day().ok())
            .map(|z| z.timestamp().as_millisecond())
        else {
            break;
        };
        out.push((d, start, next_day_start_ms(timezone, start)));
        match d.tomorrow() {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }
    out
}

/// See [`super::database::Database::report`]: the rows of every store of the query, in one
/// snapshot, then [`assemble`].
pub(crate) async fn report(e: &impl Exec, q: ReportQuery) -> DbResult<Report> {
    let wanted: BTreeSet<&str> = q.stores.iter().map(String::as_str).collect();
    let mut rows = ReportRows::default();
    for place in super::places::store_places(e).await? {
        if !wanted.contains(place.id.as_str()) {
            continue;
        }
        let days = store_days(e, &place, &q).await?;
        rows.stores.push((place, days));
    }
    if q.grouping == Grouping::Staff {
        rows.staff_names = staff_names(e, &wanted).await?;
    }
    for r in e.query("SELECT id, definition FROM campaigns", &[]).await? {
        let (id, def): (String, String) = (r.get(0)?, r.get(1)?);
        if let Some(name) = serde_json::from_str::<serde_json::Value>(&def)
            .ok()
            .and_then(|v| v.get("name")?.as_str().map(str::to_owned))
        {
            rows.campaign_names.insert(id, name);
        }
    }
    Ok(assemble(&q, rows))
}

/// The staff members' names of `stores` by (store, id): each id as the newest store
/// configuration listing it names it.
async fn staff_names(
    e: &impl Exec,
    stores: &BTreeSet<&str>,
) -> DbResult<HashMap<(String, String), String>> {
    let mut names = HashMap::new();
    for store in stores {
        // The store's versions, oldest first (its primary key): a newer name wins.
        for r in e
            .query(
                "SELECT config FROM store_configs WHERE store_id = ?1 ORDER BY version",
                args![*store],
            )
            .await?
        {
            let config: String = r.get(0)?;
            let Ok(config) =
                serde_json::from_str::<kiosk_protocol::store_config::StoreConfig>(&config)
            else {
                continue;
            };
            for m in config.parts.staff.unwrap_or_default() {
                names.insert(((*store).to_owned(), m.id), m.name);
            }
        }
    }
    Ok(names)
}

/// One store's local days of the query: roll-ups where they exist, raw rows otherwise.
async fn store_days(e: &impl Exec, place: &StorePlace, q: &ReportQuery) -> DbResult<Vec<DayRows>> {
    let tz = place.timezone.as_deref();
    let days = local_days(tz, q.from, q.to);
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Ok(Vec::new());
    };
    let (start, end) = (first.1, last.2);
    let today = start_of_day_ms(tz, q.now_ms);
    let (rolled_until, mut rolled) = rolled_days(e, &place.id, tz, start, end).await?;
    let mut counter_turns: BTreeMap<i64, Vec<CounterTurn>> = BTreeMap::new();
    if q.grouping.per_called_turn() {
        let starts: Vec<i64> = days.iter().map(|d| d.1).collect();
        for r in e
            .query(
                "SELECT t.issued_ms, t.called_ms - t.issued_ms, t.served_ms - t.called_ms,
                   COALESCE(q.counter, q.called_counter), COALESCE(q.staff, q.called_staff)
                 FROM turns t LEFT JOIN queue_turns q ON q.turn_id = t.turn_id
                 WHERE t.store_id = ?1 AND t.issued_ms >= ?2 AND t.issued_ms < ?3
                   AND t.called_ms IS NOT NULL",
                args![&place.id, start, end],
            )
            .await?
        {
            let issued: i64 = r.get(0)?;
            let i = starts.partition_point(|s| *s <= issued);
            let Some(day) = i.checked_sub(1).map(|i| starts[i]) else {
                continue;
            };
            counter_turns.entry(day).or_default().push(CounterTurn {
                wait_ms: r.get(1)?,
                service_ms: r.get(2)?,
                counter: r.get(3)?,
                staff: r.get(4)?,
            });
        }
    }
    let mut out = Vec::with_capacity(days.len());
    for (date, day_start, day_end) in days {
        let figures = if day_start < rolled_until {
            rolled.remove(&day_start).unwrap_or_default()
        } else if day_start > q.now_ms {
            WindowRows::default()
        } else {
            window_rows(e, &place.id, None, day_start, day_end - 1).await?
        };
        out.push(DayRows {
            date: Some(date),
            open: day_start >= today,
            figures,
            counter_turns: counter_turns.remove(&day_start).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// What one row adds up.
#[derive(Debug, Default)]
struct QueueAcc {
    tickets: u64,
    called: u64,
    served: u64,
    walkouts: u64,
    waits: Vec<i64>,
    services: Vec<i64>,
}

impl QueueAcc {
    /// A called turn; waits and service times below zero (clocks across a reboot) count as 0,
    /// as on the dashboard.
    fn turn(&mut self, wait_ms: i64, service_ms: Option<i64>) {
        self.called += 1;
        self.waits.push(wait_ms.max(0));
        if let Some(s) = service_ms {
            self.served += 1;
            self.services.push(s.max(0));
        }
    }
}

/// The report of the rows (pure: both backends' rows give the same report).
pub fn assemble(q: &ReportQuery, rows: ReportRows) -> Report {
    let label = |d: Date| period_label(q.period, d, q.from, q.to);
    let group_of = |p: &StorePlace| match q.grouping {
        Grouping::Region => (
            p.region.clone().unwrap_or_else(|| NO_REGION.to_owned()),
            p.region.clone().unwrap_or_else(|| NO_REGION.to_owned()),
        ),
        _ => (p.id.clone(), p.name.clone()),
    };
    let mut queue: BTreeMap<(String, String), (String, QueueAcc)> = BTreeMap::new();
    let mut scores: BTreeMap<(String, String), (String, BTreeMap<i64, i64>)> = BTreeMap::new();
    type CampaignKey = (String, String, String, String);
    let mut campaigns: BTreeMap<CampaignKey, (String, i64, i64)> = BTreeMap::new();
    for (place, days) in &rows.stores {
        let (store_key, store_name) = group_of(place);
        for day in days {
            let Some(date) = day.date else { continue };
            let period = label(date);
            let f = &day.figures;
            match q.grouping {
                Grouping::Store | Grouping::Region | Grouping::Service => {
                    let mut called_per: BTreeMap<String, u64> = BTreeMap::new();
                    let key = |service: &str| match q.grouping {
                        Grouping::Service => (service.to_owned(), service.to_owned()),
                        _ => (store_key.clone(), store_name.clone()),
                    };
                    for t in &f.tickets {
                        let (k, name) = key(&t.service);
                        let acc = &mut queue
                            .entry((period.clone(), k))
                            .or_insert((name, QueueAcc::default()))
                            .1;
                        acc.tickets += u64::try_from(t.count).unwrap_or(0);
                    }
                    for t in &f.timings {
                        let (k, name) = key(&t.service);
                        *called_per.entry(k.clone()).or_default() += 1;
                        queue
                            .entry((period.clone(), k))
                            .or_insert((name, QueueAcc::default()))
                            .1
                            .turn(t.wait_ms, t.service_ms);
                    }
                    if !day.open {
                        // Never called = issued − called, per group of the day.
                        let mut issued_per: BTreeMap<String, u64> = BTreeMap::new();
                        for t in &f.tickets {
                            *issued_per.entry(key(&t.service).0).or_default() +=
                                u64::try_from(t.count).unwrap_or(0);
                        }
                        for (k, issued) in issued_per {
                            let called = called_per.get(&k).copied().unwrap_or(0);
                            if let Some((_, acc)) = queue.get_mut(&(period.clone(), k)) {
                                acc.walkouts += issued.saturating_sub(called);
                            }
                        }
                    }
                }
                Grouping::Counter | Grouping::Staff => {
                    for t in &day.counter_turns {
                        let (k, name) = if q.grouping == Grouping::Counter {
                            let counter = t.counter.as_deref().unwrap_or("?");
                            (
                                format!("{}/{counter}", place.id),
                                format!("{} counter {counter}", place.name),
                            )
                        } else {
                            let staff = t.staff.as_deref().unwrap_or(NO_STAFF);
                            let name = rows
                                .staff_names
                                .get(&(place.id.clone(), staff.to_owned()))
                                .map_or(staff, String::as_str);
                            (
                                format!("{}/{staff}", place.id),
                                format!("{} · {name}", place.name),
                            )
                        };
                        let acc = &mut queue
                            .entry((period.clone(), k))
                            .or_insert((name, QueueAcc::default()))
                            .1;
                        acc.tickets += 1;
                        acc.turn(t.wait_ms, t.service_ms);
                    }
                }
            }
            if !f.scores.is_empty() {
                let s = &mut scores
                    .entry((period.clone(), store_key.clone()))
                    .or_insert((store_name.clone(), BTreeMap::new()))
                    .1;
                for (score, n) in &f.scores {
                    *s.entry(*score).or_default() += n;
                }
            }
            for (c, v, shown, redeemed) in &f.campaigns {
                let e = campaigns
                    .entry((period.clone(), store_key.clone(), c.clone(), v.clone()))
                    .or_insert((store_name.clone(), 0, 0));
                e.1 += shown;
                e.2 += redeemed;
            }
        }
    }
    Report {
        from: q.from.to_string(),
        to: q.to.to_string(),
        period: q.period,
        grouping: q.grouping,
        stores: rows.stores.iter().map(|(p, _)| p.clone()).collect(),
        queue: queue
            .into_iter()
            .map(|((period, group), (group_name, mut a))| QueueRow {
                period,
                group,
                group_name,
                tickets: a.tickets,
                called: a.called,
                served: a.served,
                no_shows: a.called - a.served,
                walkouts: (!q.grouping.per_called_turn()).then_some(a.walkouts),
                wait: durations(std::mem::take(&mut a.waits)),
                service_time: durations(std::mem::take(&mut a.services)),
            })
            .collect(),
        nps: scores
            .into_iter()
            .map(|((period, group), (group_name, s))| NpsRow {
                period,
                group,
                group_name,
                nps: nps_figures(&s.into_iter().collect::<Vec<_>>()),
            })
            .collect(),
        campaigns: campaigns
            .into_iter()
            .map(|((period, group, c, v), (group_name, shown, redeemed))| {
                let s = variant_stats(c, v, shown, redeemed);
                CampaignRow {
                    period,
                    group,
                    group_name,
                    campaign_name: rows.campaign_names.get(&s.campaign_id).cloned(),
                    campaign_id: s.campaign_id,
                    variant: s.variant,
                    shown: s.shown,
                    redeemed: s.redeemed,
                    conversion: s.conversion,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn periods_are_iso_weeks_months_or_the_range() {
        let (from, to) = (date("2026-12-28"), date("2027-01-10"));
        let label = |p, d: &str| period_label(p, date(d), from, to);
        assert_eq!(label(Period::Day, "2027-01-01"), "2027-01-01");
        // 2027-01-01 is a Friday: ISO week 53 of 2026, with 2026-12-28.
        assert_eq!(label(Period::Week, "2026-12-28"), "2026-W53");
        assert_eq!(label(Period::Week, "2027-01-03"), "2026-W53");
        assert_eq!(label(Period::Week, "2027-01-04"), "2027-W01");
        assert_eq!(label(Period::Month, "2027-01-10"), "2027-01");
        assert_eq!(
            label(Period::Range, "2027-01-05"),
            "2026-12-28 to 2027-01-10"
        );
    }

    #[test]
    fn local_days_follow_the_store_time_zone_across_a_dst_change() {
        // Madrid moves from +01:00 to +02:00 on 2026-03-29: that local day lasts 23 hours.
        let days = local_days(
            Some("Europe/Madrid"),
            date("2026-03-28"),
            date("2026-03-30"),
        );
        let hours: Vec<i64> = days.iter().map(|(_, s, e)| (e - s) / 3_600_000).collect();
        assert_eq!(hours, [24, 23, 24]);
        assert_eq!(
            days[0].1, 1_774_652_400_000,
            "2026-03-28 00:00 in Madrid is 23:00 UTC"
        );
        let utc = local_days(None, date("2026-03-28"), date("2026-03-28"));
        assert_eq!(utc[0].1, 1_774_656_000_000);
    }

    #[test]
    fn walkouts_are_not_counted_on_open_days_and_counters_have_none() {
        use crate::db::dashboard::{TicketCount, TurnTiming};
        let place = StorePlace {
            id: "s".into(),
            name: "S".into(),
            region: None,
            timezone: None,
            latitude: None,
            longitude: None,
        };
        let day = |d: &str, open: bool| DayRows {
            date: Some(date(d)),
            open,
            figures: WindowRows {
                tickets: vec![TicketCount {
                    quarter: 0,
                    service: "A".into(),
                    identified: false,
                    count: 3,
                }],
                timings: vec![TurnTiming {
                    service: "A".into(),
                    wait_ms: 60_000,
                    service_ms: None,
                }],
                ..WindowRows::default()
            },
            counter_turns: vec![
                CounterTurn {
                    counter: Some("2".into()),
                    staff: Some("ana".into()),
                    wait_ms: 60_000,
                    service_ms: None,
                },
                CounterTurn {
                    counter: Some("2".into()),
                    staff: None,
                    wait_ms: 30_000,
                    service_ms: Some(90_000),
                },
            ],
        };
        let q = |grouping| ReportQuery {
            from: date("2026-03-01"),
            to: date("2026-03-02"),
            period: Period::Day,
            grouping,
            stores: vec!["s".into()],
            now_ms: 0,
        };
        let rows = || ReportRows {
            stores: vec![(
                place.clone(),
                vec![day("2026-03-01", false), day("2026-03-02", true)],
            )],
            campaign_names: HashMap::new(),
            staff_names: HashMap::from([(("s".into(), "ana".into()), "Ana García".into())]),
        };
        let r = assemble(&q(Grouping::Region), rows());
        let got: Vec<_> = r
            .queue
            .iter()
            .map(|q| (q.group.as_str(), q.tickets, q.no_shows, q.walkouts))
            .collect();
        assert_eq!(
            got,
            [(NO_REGION, 3, 1, Some(2)), (NO_REGION, 3, 1, Some(0))]
        );
        let r = assemble(&q(Grouping::Counter), rows());
        assert_eq!(r.queue[0].group, "s/2");
        assert_eq!((r.queue[0].tickets, r.queue[0].walkouts), (2, None));
        let r = assemble(&q(Grouping::Staff), rows());
        let got: Vec<_> = r
            .queue
            .iter()
            .filter(|q| q.period == "2026-03-01")
            .map(|q| {
                (
                    q.group.as_str(),
                    q.group_name.as_str(),
                    q.tickets,
                    q.served,
                    q.walkouts,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("s/(store PIN)", "S · (store PIN)", 1, 1, None),
                ("s/ana", "S · Ana García", 1, 0, None),
            ]
        );
    }
}
