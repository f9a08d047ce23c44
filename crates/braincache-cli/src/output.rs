//! Text the command prints: times, durations, hex, keys.

use braincache_core::Timestamp;
use std::fmt::Write as _;
use std::time::Duration;

/// A UTC time in RFC 3339 form, to the millisecond when it has a fraction:
/// `2026-11-25T10:00:00Z`, `2026-11-25T10:00:00.250Z`.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    let nanos = t.as_unix_nanos();
    let secs = nanos / 1_000_000_000;
    let millis = (nanos % 1_000_000_000) / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if millis != 0 {
        let _ = write!(s, ".{millis:03}");
    }
    s.push('Z');
    s
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A duration for people, to its two largest units: `250ms`, `12s`, `4m 10s`, `1h 5m`, `3d 4h`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.subsec_millis());
    }
    let units = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let first = units.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    let mut s = format!("{}{}", units[first].0, units[first].1);
    if let Some((n, u)) = units.get(first + 1)
        && *n > 0
    {
        let _ = write!(s, " {n}{u}");
    }
    s
}

/// How long an entry has left: `never`, `4m 10s`, or `expired 3s ago`.
pub(crate) fn ttl_left(deadline: Option<Timestamp>, now: Timestamp) -> String {
    match deadline {
        None => "never".to_owned(),
        Some(d) if d <= now => format!("expired {} ago", human(now.saturating_duration_since(d))),
        Some(d) => human(d.saturating_duration_since(now)),
    }
}

/// A deadline with its distance from now: `2026-11-25T10:00:00Z (in 5m 3s)`.
pub(crate) fn deadline(d: Timestamp, now: Timestamp) -> String {
    if d <= now {
        format!(
            "{} ({} ago)",
            rfc3339(d),
            human(now.saturating_duration_since(d))
        )
    } else {
        format!(
            "{} (in {})",
            rfc3339(d),
            human(d.saturating_duration_since(now))
        )
    }
}

/// Lower-case hex, two digits per byte, nothing between.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A key as `inspect --keys` lists it: as it is, or quoted and escaped when it holds control
/// characters (a newline in a key would otherwise start a new row) or is empty.
pub(crate) fn display_key(key: &str) -> String {
    if key.is_empty() || key.chars().any(char::is_control) {
        format!("{key:?}")
    } else {
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp::EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(1_767_225_600_250)),
            "2026-01-01T00:00:00.250Z"
        );
        // A leap day, and the end of a leap year.
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(951_782_400_000)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(1_735_689_599_999)),
            "2024-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339(Timestamp::MAX), "2554-07-21T23:34:33.709Z");
    }

    #[test]
    fn durations_print_with_two_units_at_most() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(250)), "4m 10s");
        assert_eq!(human(Duration::from_secs(3600 + 5 * 60 + 7)), "1h 5m");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d 4h");
        let now = Timestamp::from_unix_millis(10_000);
        assert_eq!(ttl_left(None, now), "never");
        assert_eq!(
            ttl_left(Some(Timestamp::from_unix_millis(7_000)), now),
            "expired 3s ago"
        );
        assert_eq!(ttl_left(Some(now), now), "expired 0ms ago");
        assert_eq!(
            ttl_left(Some(Timestamp::from_unix_millis(70_000)), now),
            "1m"
        );
    }

    #[test]
    fn hex_matches_known_vectors() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
    }

    #[test]
    fn keys_are_quoted_when_they_would_break_a_row() {
        assert_eq!(display_key("a b"), "a b");
        assert_eq!(display_key("a\nb"), "\"a\\nb\"");
        assert_eq!(display_key(""), "\"\"");
    }
}
