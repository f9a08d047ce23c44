//! Where the cache reads the time from.

use crate::Timestamp;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of wall-clock time for TTL decisions.
///
/// # Contract
/// `now` must be cheap and thread-safe. It need not be monotonic (the system clock is not), but
/// a clock that goes backwards makes entries live longer, never shorter, than their TTL said.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's real-time clock. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to, so TTL tests never sleep.
///
/// Clones share one time: hand one clone to the cache and keep another to advance it.
///
/// ```
/// use braincache::Timestamp;
/// use braincache::base::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(Timestamp::from_unix_millis(0));
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), Timestamp::from_unix_millis(5_000));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock showing `start`.
    #[must_use]
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(start.as_unix_nanos())),
        }
    }

    /// A manual clock starting at the current system time (so deadlines stay realistic for
    /// backends such as Redis that also expire entries by real time).
    #[must_use]
    pub fn starting_now() -> ManualClock {
        ManualClock::new(Timestamp::now())
    }

    /// Moves the clock forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(add))
            });
    }

    /// Sets the clock to `t` (it may go backwards).
    pub fn set(&self, t: Timestamp) {
        self.nanos.store(t.as_unix_nanos(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}
