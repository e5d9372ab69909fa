//! Retry delays: exponential backoff with full jitter, and `retry-after`
//! header parsing.

use rand::Rng;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exponential backoff with full jitter (AWS architecture blog "Exponential
/// Backoff And Jitter"): the delay before retry `n` is uniform in
/// `[0, min(max, base * 2^(n-1))]`, which spreads competing clients out
/// instead of having them retry in lock-step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Upper bound of the first retry's delay.
    pub base: Duration,
    /// Cap on the upper bound, whatever the retry number.
    pub max: Duration,
}

impl Default for Backoff {
    /// `base` 100 ms, `max` 5 s.
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The ceiling of the delay before retry `retry` (1 = first retry; 0 is
    /// treated as 1): `min(max, base * 2^(retry-1))`, saturating.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1);
        let grown = 2u32
            .checked_pow(exp)
            .and_then(|f| self.base.checked_mul(f))
            .unwrap_or(self.max);
        grown.min(self.max)
    }

    /// Delay before retry number `retry` (1 = first retry): uniform random in
    /// `[0, min(max, base * 2^(retry-1))]`.
    pub fn delay(&self, retry: u32) -> Duration {
        let cap = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        if cap == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand::thread_rng().gen_range(0..=cap))
    }
}

/// Parse `retry-after-ms` (milliseconds, float allowed; sent by OpenAI and
/// Azure) or `retry-after` (delta-seconds, or an HTTP-date relative to now)
/// header values; a valid ms header wins. Negative, non-finite or unparsable
/// values give `None`; an HTTP-date in the past gives `Some(ZERO)`.
///
/// No upper bound is applied: callers decide how long they are willing to
/// wait (the server compares against its `max_retry_after`).
pub fn parse_retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
) -> Option<Duration> {
    parse_retry_after_at(retry_after_ms, retry_after, SystemTime::now())
}

fn parse_retry_after_at(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(d) = retry_after_ms.and_then(|ms| non_negative_secs(ms, 1000.0)) {
        return Some(d);
    }
    let v = retry_after?.trim();
    if v.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '+') {
        return non_negative_secs(v, 1.0);
    }
    let at = parse_http_date(v)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?;
    Some(Duration::from_secs(at).saturating_sub(now))
}

/// `s` as a non-negative finite number of units, `per_sec` units a second.
fn non_negative_secs(s: &str, per_sec: f64) -> Option<Duration> {
    let x: f64 = s.trim().parse().ok()?;
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(x / per_sec).ok()
}

/// An HTTP-date (RFC 9110 §5.6.7) as seconds since the Unix epoch: the
/// preferred IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, and the obsolete
/// RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and asctime
/// `Sun Nov  6 08:49:37 1994` forms. The weekday is not checked.
fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        // IMF-fixdate
        [wd, day, mon, year, time, zone] if wd.ends_with(',') && is_gmt(zone) => {
            (day.parse().ok()?, month(mon)?, year.parse().ok()?, *time)
        }
        // RFC 850
        [wd, dmy, time, zone] if wd.ends_with(',') && is_gmt(zone) => {
            let mut it = dmy.split('-');
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || y.len() != 2 {
                return None;
            }
            let yy: u32 = y.parse().ok()?;
            // RFC 9110: a two-digit year more than 50 years ahead is in the past.
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (d.parse().ok()?, month(m)?, year, *time)
        }
        // asctime
        [_wd, mon, day, time, year] => (day.parse().ok()?, month(mon)?, year.parse().ok()?, *time),
        _ => return None,
    };
    let mut hms = time.split(':');
    let (h, mi, se) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() {
        return None;
    }
    let (h, mi, se): (u64, u64, u64) = (h.parse().ok()?, mi.parse().ok()?, se.parse().ok()?);
    if !(1970..=9999).contains(&year)
        || day == 0
        || day > days_in_month(year, month)
        || h > 23
        || mi > 59
        || se > 60
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

fn is_gmt(zone: &str) -> bool {
    zone.eq_ignore_ascii_case("GMT") || zone.eq_ignore_ascii_case("UTC")
}

fn month(m: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|x| x.eq_ignore_ascii_case(m))
        .map(|i| i as u32 + 1)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        // February: whatever the calendar arithmetic says (28 or 29).
        2 => u32::try_from(days_from_civil(year, 3, 1) - days_from_civil(year, 2, 1)).unwrap_or(28),
        _ => 0,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (negative before;
/// Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let m = i64::from(month);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9).rem_euclid(12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_bounded_grows_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_millis(1600));
        assert_eq!(b.ceiling(6), Duration::from_secs(2));
        assert_eq!(b.ceiling(40), Duration::from_secs(2), "no overflow");
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(2));
        for retry in 1..=12 {
            let cap = b.ceiling(retry);
            let mut max_seen = Duration::ZERO;
            for _ in 0..200 {
                let d = b.delay(retry);
                assert!(d <= cap, "retry {retry}: {d:?} > {cap:?}");
                max_seen = max_seen.max(d);
            }
            // 200 uniform draws: the largest is above half the cap with
            // probability 1 - 2^-200.
            assert!(max_seen > cap / 2, "retry {retry}: grows with the ceiling");
        }
        assert_eq!(Backoff::default().ceiling(1), Duration::from_millis(100));
        assert_eq!(Backoff::default().ceiling(100), Duration::from_secs(5));
        let zero = Backoff {
            base: Duration::ZERO,
            max: Duration::from_secs(1),
        };
        assert_eq!(zero.delay(3), Duration::ZERO);
    }

    #[test]
    fn jitter_varies() {
        let b = Backoff::default();
        let draws: std::collections::HashSet<Duration> = (0..100).map(|_| b.delay(3)).collect();
        assert!(draws.len() > 90, "only {} distinct delays", draws.len());
        let mean = (0..10_000).map(|_| b.delay(3).as_secs_f64()).sum::<f64>() / 10_000.0;
        // Uniform on [0, 400ms]: mean 200ms.
        assert!((0.18..0.22).contains(&mean), "mean {mean}");
    }

    #[test]
    fn retry_after_values() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let p = |ms, s| parse_retry_after_at(ms, s, now);
        assert_eq!(p(Some("1500"), None), Some(Duration::from_millis(1500)));
        assert_eq!(p(Some(" 2.5 "), None), Some(Duration::from_micros(2500)));
        assert_eq!(
            p(Some("250"), Some("10")),
            Some(Duration::from_millis(250)),
            "ms header wins"
        );
        assert_eq!(
            p(Some("junk"), Some("3")),
            Some(Duration::from_secs(3)),
            "bad ms falls back"
        );
        assert_eq!(p(None, Some("120")), Some(Duration::from_secs(120)));
        assert_eq!(p(None, Some("0")), Some(Duration::ZERO));
        assert_eq!(p(None, Some("1.5")), Some(Duration::from_millis(1500)));
        // HTTP-dates, all three forms, relative to `now`.
        assert_eq!(
            p(None, Some("Sun, 06 Nov 1994 08:50:07 GMT")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            p(None, Some("Sunday, 06-Nov-94 08:49:47 GMT")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            p(None, Some("Sun Nov  6 08:51:37 1994")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            p(None, Some("Sat, 05 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO),
            "past"
        );
        // Garbage and negatives.
        for bad in [
            "",
            "soon",
            "-1",
            "-0.5",
            "NaN",
            "inf",
            "1e400",
            "12abc",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 29 Feb 1995 08:49:37 GMT",
        ] {
            assert_eq!(p(None, Some(bad)), None, "{bad:?}");
        }
        assert_eq!(p(Some("-100"), None), None);
        assert_eq!(p(Some("-100"), Some("-2")), None);
        assert_eq!(p(None, None), None);
        // The public function uses the wall clock.
        assert_eq!(
            parse_retry_after(None, Some("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(None, Some("Thu, 01 Jan 1970 00:00:00 GMT")),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
    }
}
