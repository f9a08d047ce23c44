//! Points in time as the cache stores them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in wall-clock time: nanoseconds since the Unix epoch.
///
/// Deadlines are stored in this form (in files, tables and the expiry index), so they survive
/// restarts and compare across processes, which `std::time::Instant` cannot do. Arithmetic
/// saturates: a TTL too large to represent means "as late as can be stored" (about year 2554),
/// never a wrap-around into the past.
///
/// ```
/// use braincache::Timestamp;
/// use std::time::Duration;
///
/// let t = Timestamp::from_unix_millis(1_000);
/// assert_eq!(t + Duration::from_millis(500), Timestamp::from_unix_millis(1_500));
/// assert_eq!(t.as_unix_secs_f64(), 1.0);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);
    /// The latest representable time.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// The current system time (the epoch if the system clock is set before 1970).
    #[must_use]
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// Converts a `SystemTime`; times before the epoch clamp to the epoch.
    #[must_use]
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::EPOCH + d,
            Err(_) => Timestamp::EPOCH,
        }
    }

    /// Builds a timestamp from nanoseconds since the epoch.
    #[must_use]
    pub const fn from_unix_nanos(nanos: u64) -> Timestamp {
        Timestamp(nanos)
    }

    /// Builds a timestamp from milliseconds since the epoch (saturating).
    #[must_use]
    pub const fn from_unix_millis(millis: u64) -> Timestamp {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// Builds a timestamp from seconds since the epoch as a float, as the Python original stores
    /// `expire_at`. Returns `None` for NaN, infinities and negative values.
    #[must_use]
    pub fn from_unix_secs_f64(secs: f64) -> Option<Timestamp> {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        let nanos = secs * 1e9;
        // `as` saturates for floats beyond u64::MAX, which is the behaviour we want.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(Timestamp(nanos as u64))
    }

    /// Nanoseconds since the epoch.
    #[must_use]
    pub const fn as_unix_nanos(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch (truncated).
    #[must_use]
    pub const fn as_unix_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Seconds since the epoch as a float (the Python original's `expire_at`).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_unix_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(nanos))
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Timestamp({}.{:09})",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_saturate() {
        let t = Timestamp::from_unix_secs_f64(1.5).unwrap();
        assert_eq!(t.as_unix_millis(), 1_500);
        assert_eq!(Timestamp::from_unix_secs_f64(f64::NAN), None);
        assert_eq!(Timestamp::from_unix_secs_f64(-1.0), None);
        assert_eq!(Timestamp::from_unix_secs_f64(1e300), Some(Timestamp::MAX));
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(Timestamp::EPOCH + Duration::MAX, Timestamp::MAX);
        assert_eq!(
            Timestamp::from_unix_millis(5)
                .saturating_duration_since(Timestamp::from_unix_millis(9)),
            Duration::ZERO
        );
    }
}
