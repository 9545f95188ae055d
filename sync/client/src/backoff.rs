//! How long the sync worker waits before trying again: exponential backoff with full jitter,
//! capped (docs/DESIGN.md invariant 5), and the endpoint's `Retry-After` when it gives one.
//!
//! Full jitter (`random(0, min(cap, base * 2^n))` after the n-th consecutive failure, n from 0)
//! keeps a fleet of kiosks that lost the endpoint together from hammering it in lockstep when it
//! comes back.

use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;
use time::macros::format_description;

/// Consecutive-failure counter and the delays it gives.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never above `cap` (a zero base is raised to 1 ms, a cap
    /// below the base is raised to the base).
    pub fn new(base: Duration, cap: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The ceiling of the next delay: `min(cap, base * 2^failures)`.
    pub fn ceiling(&self) -> Duration {
        // 2^31 * 1 ms is already 24 days: beyond that every ceiling is the cap.
        let exp = self.failures.min(31);
        self.base
            .checked_mul(1u32 << exp)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// Records a failure and returns how long to wait: uniform in `[0, ceiling]` for the ceiling
    /// before this failure was counted.
    pub fn fail<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        full_jitter(ceiling, rng)
    }

    /// Records a failure whose delay someone else decides (a `Retry-After`).
    pub fn count_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Forgets the failures (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The base delay.
    pub fn base(&self) -> Duration {
        self.base
    }
}

/// A uniformly random duration in `[0, ceiling]`, millisecond resolution.
pub fn full_jitter<R: Rng + ?Sized>(ceiling: Duration, rng: &mut R) -> Duration {
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.gen_range(0..=ms))
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay seconds, or an HTTP date (IMF-fixdate,
/// and the obsolete RFC 850 and asctime forms recipients must accept). A date in the past gives
/// zero. `None` when the value is neither.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate rather than fail: the caller clamps anyway.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = parse_http_date(value)?;
    let wait = at - now;
    Some(if wait.is_negative() {
        Duration::ZERO
    } else {
        wait.unsigned_abs()
    })
}

/// Parses an HTTP date in any of the three forms of RFC 9110 §5.6.7, as UTC.
pub fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    let imf = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let rfc850 = format_description!(
        "[weekday], [day]-[month repr:short]-[year repr:last_two] [hour]:[minute]:[second] GMT"
    );
    let asctime = format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    if let Ok(dt) = time::PrimitiveDateTime::parse(value, imf) {
        return Some(dt.assume_utc());
    }
    if let Ok(dt) = time::PrimitiveDateTime::parse(value, asctime) {
        return Some(dt.assume_utc());
    }
    parse_rfc850(value, rfc850)
}

/// RFC 850 dates carry a two-digit year; RFC 9110 says to read it as the most recent past year
/// with those digits when it would otherwise be more than 50 years ahead.
fn parse_rfc850(
    value: &str,
    format: &[time::format_description::BorrowedFormatItem<'_>],
) -> Option<OffsetDateTime> {
    let mut p = time::parsing::Parsed::new();
    let rest = p.parse_items(value.as_bytes(), format).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let two = i32::from(p.year_last_two()?);
    let this_year = OffsetDateTime::now_utc().year();
    let century = this_year - this_year.rem_euclid(100);
    let mut year = century + two;
    if year > this_year + 50 {
        year -= 100;
    }
    let date = time::Date::from_calendar_date(year, p.month()?, p.day()?.get()).ok()?;
    let clock = time::Time::from_hms(p.hour_24()?, p.minute()?, p.second()?).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use time::macros::datetime;

    #[test]
    fn delays_stay_within_full_jitter_bounds_and_the_ceiling_doubles_up_to_the_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let expected_ceilings = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000];
        for (n, want) in expected_ceilings.iter().enumerate() {
            assert_eq!(b.failures(), n as u32);
            assert_eq!(b.ceiling(), Duration::from_millis(*want));
            let d = b.fail(&mut rng);
            assert!(d <= Duration::from_millis(*want), "{d:?} above {want} ms");
        }
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_over_the_whole_range_not_only_its_top() {
        let mut rng = StdRng::seed_from_u64(1);
        let ceiling = Duration::from_millis(1000);
        let draws: Vec<Duration> = (0..2000).map(|_| full_jitter(ceiling, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d <= ceiling));
        let low = draws
            .iter()
            .filter(|d| **d < Duration::from_millis(250))
            .count();
        let high = draws
            .iter()
            .filter(|d| **d > Duration::from_millis(750))
            .count();
        // A quarter each expected (500, sd ≈ 19): equal jitter or no jitter would give 0 low.
        assert!((400..600).contains(&low), "{low} draws below 250 ms");
        assert!((400..600).contains(&high), "{high} draws above 750 ms");
    }

    #[test]
    fn ceiling_saturates_at_the_cap_after_many_failures() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..200 {
            assert!(b.fail(&mut rng) <= Duration::from_secs(60));
        }
        assert_eq!(b.failures(), 200);
        assert_eq!(b.ceiling(), Duration::from_secs(60));
    }

    #[test]
    fn degenerate_settings_are_raised_to_something_sane() {
        let b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.base(), Duration::from_millis(1));
        assert_eq!(b.ceiling(), Duration::from_millis(1));
    }

    #[test]
    fn retry_after_reads_delay_seconds() {
        let now = datetime!(2026-11-23 10:00:00 UTC);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_reads_all_three_http_date_forms() {
        let now = datetime!(2026-11-23 10:00:00 UTC);
        let want = Some(Duration::from_secs(90));
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 10:01:30 GMT", now),
            want
        );
        assert_eq!(
            parse_retry_after("Monday, 23-Nov-26 10:01:30 GMT", now),
            want
        );
        assert_eq!(parse_retry_after("Mon Nov 23 10:01:30 2026", now), want);
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(datetime!(1994-11-06 08:49:37 UTC))
        );
    }

    #[test]
    fn retry_after_date_in_the_past_means_now() {
        let now = datetime!(2026-11-23 10:00:00 UTC);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
    }
}
