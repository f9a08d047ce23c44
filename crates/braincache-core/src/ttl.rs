//! `Ttl`: how long an entry lives, written the way callers write it.

use std::time::Duration;

/// How long an entry lives: forever, or a [`Duration`] from when it is stored.
///
/// Methods that take a TTL accept `impl Into<Ttl>`, so every way of writing one works:
///
/// | written | means |
/// |---|---|
/// | `None` | never expires |
/// | `Duration::from_secs(60)`, `Some(d)`, an `Option<Duration>` | that duration (`None`: never) |
/// | `60`, `60u64`, `secs` (any integer type) | whole seconds, as the Python original writes it |
/// | `0`, `Duration::ZERO` | already expired: stored, never returned (not "forever") |
/// | a negative integer (`-5`) | already expired, like `0` (a deadline in the past, as in Python) |
/// | `Ttl::FOREVER`, `Ttl::secs(60)`, `Ttl::from_duration(d)` | spelled out |
///
/// ```
/// use braincache::{BrainCache, Ttl};
/// use std::time::Duration;
///
/// # fn main() -> braincache::Result<()> {
/// let cache = BrainCache::default();
/// cache.set("a", &1u8, 60)?; // seconds
/// cache.set("b", &1u8, Duration::from_millis(1500))?;
/// cache.set("c", &1u8, None)?; // forever
/// let from_config: Option<Duration> = None;
/// cache.set("d", &1u8, from_config)?;
/// assert_eq!(Ttl::from(60), Ttl::secs(60));
/// assert_eq!(Ttl::from(-1), Ttl::from(Duration::ZERO));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ttl(Option<Duration>);

impl Ttl {
    /// Never expires (the same as `None`).
    pub const FOREVER: Ttl = Ttl(None);

    /// Expires `secs` seconds after it is stored.
    #[must_use]
    pub const fn secs(secs: u64) -> Ttl {
        Ttl(Some(Duration::from_secs(secs)))
    }

    /// Expires `d` after it is stored.
    #[must_use]
    pub const fn from_duration(d: Duration) -> Ttl {
        Ttl(Some(d))
    }

    /// The duration; `None` for an entry that never expires.
    #[must_use]
    pub const fn duration(self) -> Option<Duration> {
        self.0
    }

    /// True for [`Ttl::FOREVER`].
    #[must_use]
    pub const fn is_forever(self) -> bool {
        self.0.is_none()
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Ttl {
        Ttl(Some(d))
    }
}

impl From<Option<Duration>> for Ttl {
    fn from(d: Option<Duration>) -> Ttl {
        Ttl(d)
    }
}

impl From<Ttl> for Option<Duration> {
    fn from(t: Ttl) -> Option<Duration> {
        t.0
    }
}

/// Whole seconds, from unsigned integers.
macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Ttl {
            /// Whole seconds.
            fn from(secs: $t) -> Ttl {
                // Every unsigned type here fits in a u64 (usize on 64-bit targets at most).
                Ttl::secs(u64::try_from(secs).unwrap_or(u64::MAX))
            }
        }
    )*};
}

/// Whole seconds, from signed integers: a negative number is a deadline in the past (already
/// expired, as in the Python original, where `time.time() + ttl` is then in the past).
macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Ttl {
            /// Whole seconds; a negative number is already expired, like `0`.
            fn from(secs: $t) -> Ttl {
                Ttl::secs(u64::try_from(secs).unwrap_or(0))
            }
        }
    )*};
}

from_unsigned!(u8, u16, u32, u64, usize);
// An untyped literal (`cache.set("k", &v, 60)`) falls back to `i32`, which is why the signed
// types are here too.
from_signed!(i8, i16, i32, i64, isize);

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(t: impl Into<Ttl>) -> Option<Duration> {
        t.into().duration()
    }

    #[test]
    fn every_form_converts() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(ttl(None), None);
        assert_eq!(ttl(60), secs(60));
        assert_eq!(ttl(60u8), secs(60));
        assert_eq!(ttl(60u64), secs(60));
        assert_eq!(ttl(60usize), secs(60));
        assert_eq!(ttl(60i64), secs(60));
        assert_eq!(ttl(u64::MAX), secs(u64::MAX));
        assert_eq!(ttl(0), secs(0));
        assert_eq!(ttl(-1), secs(0), "negative: already expired");
        assert_eq!(ttl(i64::MIN), secs(0));
        assert_eq!(
            ttl(Duration::from_millis(5)),
            Some(Duration::from_millis(5))
        );
        assert_eq!(ttl(Some(Duration::ZERO)), Some(Duration::ZERO));
        assert_eq!(ttl(None::<Duration>), None);
        assert_eq!(ttl(Ttl::FOREVER), None);
        assert_eq!(ttl(Ttl::secs(3)), secs(3));
        assert!(Ttl::default().is_forever());
        assert_eq!(Option::<Duration>::from(Ttl::secs(1)), secs(1));
    }
}
