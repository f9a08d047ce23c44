//! The settings every backend that talks to servers shares, for its builder to embed.
//!
//! A networked backend (Redis, a Redis Cluster, memcached) takes the same five settings: a key
//! prefix, how many connections to keep, how long connecting and each read or write may take,
//! and whether the builder's `build` connects at once or leaves it to the first call.
//! [`NetOptions`] holds them with one set of defaults and one clamping rule, so the same builder
//! call means the same thing on every such backend. A builder embeds it, and
//! [`net_setters!`](crate::net_setters) writes the builder's setters for it, with the names and
//! types every networked builder shares and the documentation the builder gives (what the
//! setting does on that store):
//!
//! ```
//! use braincache_core::net::NetOptions;
//! use std::time::Duration;
//!
//! /// Builds a backend for the (made-up) Acme store.
//! #[must_use]
//! #[derive(Clone, Debug)]
//! pub struct AcmeBuilder {
//!     url: String,
//!     net: NetOptions,
//! }
//!
//! impl AcmeBuilder {
//!     braincache_core::net_setters! {
//!         net;
//!         /// Puts `prefix` in front of every key (default `braincache:`).
//!         key_prefix;
//!         /// Keeps at most `n` connections (at least 1; default 16).
//!         pool_size(usize);
//!         /// How long opening a connection may take (default 1 s; at least 1 ms).
//!         connect_timeout;
//!         /// How long one read or write may block (default 1 s; at least 1 ms).
//!         response_timeout;
//!         /// `build` connects on first use. By default it connects and fails if Acme is down.
//!         connect_lazily;
//!     }
//! }
//!
//! let b = AcmeBuilder { url: "acme://db".into(), net: NetOptions::default() }
//!     .pool_size(0)
//!     .connect_timeout(Duration::ZERO)
//!     .connect_lazily();
//! assert_eq!(b.net.pool_size(), 1); // clamped, never a panic
//! assert_eq!(b.net.connect_timeout(), NetOptions::MIN_TIMEOUT);
//! assert_eq!(b.net.key_prefix(), "braincache:");
//! assert!(b.net.lazy());
//! ```

use std::fmt;
use std::time::Duration;

/// The key prefix of a networked backend unless its builder sets another (`braincache:`), the
/// same for every handle, so processes share entries unless they pick different prefixes.
pub const DEFAULT_KEY_PREFIX: &str = "braincache:";

/// Key prefix, pool size, connect and response timeouts and lazy connect: what every networked
/// backend's builder takes. See the [module docs](self).
///
/// Defaults: key prefix [`DEFAULT_KEY_PREFIX`], [`DEFAULT_POOL_SIZE`](Self::DEFAULT_POOL_SIZE)
/// connections, connect and response timeouts [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT), and
/// `build` connects (not lazy). No setter panics: a pool size of 0 becomes 1 and a timeout
/// under [`MIN_TIMEOUT`](Self::MIN_TIMEOUT) becomes that.
#[derive(Clone, PartialEq, Eq)]
pub struct NetOptions {
    key_prefix: String,
    pool_size: usize,
    connect_timeout: Duration,
    response_timeout: Duration,
    lazy: bool,
}

impl NetOptions {
    /// Connections kept unless set otherwise: 16 (per server, for a backend of several).
    pub const DEFAULT_POOL_SIZE: usize = 16;
    /// The connect and the response timeout unless set otherwise: 1 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// The shortest timeout: 1 ms (a zero timeout means "none" to the OS socket calls).
    pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

    /// The defaults (see [`NetOptions`]).
    #[must_use]
    pub fn new() -> NetOptions {
        NetOptions {
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            pool_size: Self::DEFAULT_POOL_SIZE,
            connect_timeout: Self::DEFAULT_TIMEOUT,
            response_timeout: Self::DEFAULT_TIMEOUT,
            lazy: false,
        }
    }

    /// Sets the prefix put in front of every key. Checking it is the backend's (what a store
    /// accepts differs).
    pub fn set_key_prefix(&mut self, prefix: impl Into<String>) {
        self.key_prefix = prefix.into();
    }

    /// Sets how many connections to keep, at least 1.
    pub fn set_pool_size(&mut self, n: usize) {
        self.pool_size = n.max(1);
    }

    /// Sets how long opening a connection may take, at least [`MIN_TIMEOUT`](Self::MIN_TIMEOUT).
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout.max(Self::MIN_TIMEOUT);
    }

    /// Sets how long one read or write on a connection may block, at least
    /// [`MIN_TIMEOUT`](Self::MIN_TIMEOUT).
    pub fn set_response_timeout(&mut self, timeout: Duration) {
        self.response_timeout = timeout.max(Self::MIN_TIMEOUT);
    }

    /// Sets whether `build` only checks its arguments and connects on first use (`true`), or
    /// connects and fails when the store does not answer (`false`, the default).
    pub fn set_lazy(&mut self, lazy: bool) {
        self.lazy = lazy;
    }

    /// The prefix in front of every key.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The most connections to keep (at least 1).
    #[must_use]
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// How long opening a connection may take.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long one read or write on a connection may block.
    #[must_use]
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Whether `build` leaves connecting to the first call.
    #[must_use]
    pub fn lazy(&self) -> bool {
        self.lazy
    }

    /// Adds the settings to a builder's `Debug` output, each under its setter's name, so every
    /// networked builder prints them alike.
    pub fn debug_fields<'d, 'a, 'b>(
        &self,
        d: &'d mut fmt::DebugStruct<'a, 'b>,
    ) -> &'d mut fmt::DebugStruct<'a, 'b> {
        d.field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("lazy", &self.lazy)
    }
}

impl Default for NetOptions {
    fn default() -> NetOptions {
        NetOptions::new()
    }
}

impl fmt::Debug for NetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug_fields(&mut f.debug_struct("NetOptions"))
            .finish()
    }
}

/// Writes a networked backend's builder setters, delegating to the builder's [`NetOptions`]
/// field: `key_prefix`, `pool_size`, `connect_timeout`, `response_timeout`, `connect_lazily`,
/// and the deprecated `lazy(bool)`. Used inside the builder's `impl` block (see the
/// [module docs](crate::net) for an example).
///
/// The builder gives the name of its [`NetOptions`] field, then each setter in this order, with
/// its documentation: what the setting does on that store. `pool_size` names the type of its
/// argument (values beyond `usize` saturate). Each setter consumes the builder and returns it,
/// as every braincache builder does; what they clamp is [`NetOptions`]'s rule.
#[macro_export]
macro_rules! net_setters {
    (
        $net:ident;
        $(#[$key_prefix:meta])* key_prefix;
        $(#[$pool_size:meta])* pool_size($pool_ty:ty);
        $(#[$connect_timeout:meta])* connect_timeout;
        $(#[$response_timeout:meta])* response_timeout;
        $(#[$connect_lazily:meta])* connect_lazily;
    ) => {
        $(#[$key_prefix])*
        pub fn key_prefix(
            mut self,
            prefix: impl ::std::convert::Into<::std::string::String>,
        ) -> Self {
            self.$net.set_key_prefix(prefix);
            self
        }

        $(#[$pool_size])*
        pub fn pool_size(mut self, n: $pool_ty) -> Self {
            self.$net.set_pool_size(
                ::std::convert::TryFrom::try_from(n).unwrap_or(::std::primitive::usize::MAX),
            );
            self
        }

        $(#[$connect_timeout])*
        pub fn connect_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.$net.set_connect_timeout(timeout);
            self
        }

        $(#[$response_timeout])*
        pub fn response_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.$net.set_response_timeout(timeout);
            self
        }

        $(#[$connect_lazily])*
        pub fn connect_lazily(mut self) -> Self {
            self.$net.set_lazy(true);
            self
        }

        /// [`connect_lazily`](Self::connect_lazily) when `lazy` is true.
        #[deprecated(
            note = "use `connect_lazily()`: switches take no argument, like `single_process()`"
        )]
        pub fn lazy(mut self, lazy: bool) -> Self {
            self.$net.set_lazy(lazy);
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_clamps() {
        let mut o = NetOptions::default();
        assert_eq!(o.key_prefix(), DEFAULT_KEY_PREFIX);
        assert_eq!(o.pool_size(), 16);
        assert_eq!(o.connect_timeout(), Duration::from_secs(1));
        assert_eq!(o.response_timeout(), Duration::from_secs(1));
        assert!(!o.lazy());

        o.set_pool_size(0);
        o.set_connect_timeout(Duration::ZERO);
        o.set_response_timeout(Duration::from_micros(10));
        assert_eq!(o.pool_size(), 1);
        assert_eq!(o.connect_timeout(), Duration::from_millis(1));
        assert_eq!(o.response_timeout(), Duration::from_millis(1));

        o.set_pool_size(3);
        o.set_connect_timeout(Duration::from_millis(300));
        o.set_response_timeout(Duration::from_secs(5));
        o.set_key_prefix("");
        o.set_lazy(true);
        assert_eq!(
            (
                o.pool_size(),
                o.connect_timeout(),
                o.response_timeout(),
                o.key_prefix(),
                o.lazy()
            ),
            (
                3,
                Duration::from_millis(300),
                Duration::from_secs(5),
                "",
                true
            )
        );
    }

    #[test]
    fn debug_names_every_setting() {
        let text = format!("{:?}", NetOptions::default());
        for field in [
            "key_prefix: \"braincache:\"",
            "pool_size: 16",
            "connect_timeout: 1s",
            "response_timeout: 1s",
            "lazy: false",
        ] {
            assert!(text.contains(field), "{field} in {text}");
        }
    }
}
