//! Support for the `#[cache]` macro's generated code. Not a stable API: names and signatures here
//! change without notice.
//!
//! The generated code names nothing but `::braincache::__private::…` (or the path given with
//! `crate = "…"`), so a crate that uses `#[cache]` needs no other dependency and no imports.
//! The key encoding (`fn:v1:<path>:<hex of postcard(arguments)>`, built by [`KeyBuilder`]) is
//! documented once, for users, in the `braincache-macros` crate docs, section *Keys*
//! (<https://docs.rs/braincache-macros>); change the two together.
//!
//! # Companions
//!
//! Next to `f`, the macro generates `f_cache_key` and `f_invalidate` (which build the key from
//! references to the key arguments and call [`key_string`] / [`invalidate`]) and `f_refresh`
//! (`f`'s own expansion with a key from [`KeyBuilder::refreshing`]: the `call*` helpers then run
//! the function and store its result without looking the key up). A companion finds `f`'s path
//! with [`companion_site_path`].

pub use serde;

use crate::BrainCache;
use crate::cache::LoadError;
use crate::log::warn_event;
use crate::memo::{
    Fallible, KeyPlan, Loaded, Optional, Plain, Policy, memoize, store, unreachable_after_run,
};
use braincache_core::{Backend, Codec, CodecError, Error, Operation, Postcard};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// For the companions' signatures.
pub use crate::Result;
pub use std::any::type_name_of_val;
/// For the companions' signatures.
pub use std::string::String;

#[cfg(feature = "async")]
pub use crate::future::macro_support::*;
#[cfg(not(feature = "async"))]
pub use no_async::*;

/// Without the `async` feature, `#[cache]` on an `async fn` expands to calls of these, which
/// fail to compile with a message naming the feature.
#[cfg(not(feature = "async"))]
mod no_async {
    use std::time::Duration;

    /// Implemented by nothing: its error message is the point.
    #[diagnostic::on_unimplemented(
        message = "`#[cache]` on an `async fn` needs braincache's `async` feature",
        label = "the async memoizing call is compiled only with the `async` feature",
        note = "enable it: `braincache = {{ version = \"…\", features = [\"async\"] }}`"
    )]
    pub trait AsyncFeatureEnabled {}

    /// What the stubs below take instead of a cache.
    pub struct AsyncFeatureOff;

    pub fn default_async_cache() -> AsyncFeatureOff {
        AsyncFeatureOff
    }

    pub fn as_async_cache<T: ?Sized>(_: &T) -> AsyncFeatureOff {
        AsyncFeatureOff
    }

    pub fn call_async<X: AsyncFeatureEnabled, K, T, F>(
        _: X,
        _: K,
        _: Option<Duration>,
        _: F,
    ) -> std::future::Pending<T> {
        std::future::pending()
    }

    pub use call_async as call_option_async;
    pub use call_async as call_result_async;

    /// No bound: the function's own call already says the feature is missing, once.
    pub fn invalidate_async<X, K>(_: X, _: K) -> std::future::Pending<crate::Result<bool>> {
        std::future::pending()
    }
}

/// The prefix of every key the macro builds: a marker and the encoding version.
pub const KEY_PREFIX: &str = "fn:v1:";

/// The suffix of the marker function the macro declares inside each memoized function.
const SITE_SUFFIX: &str = "::__braincache_site";

/// The process-wide memory cache that `#[cache]` uses when no `cache = …` is given.
#[cfg(feature = "memory")]
pub fn default_cache() -> &'static BrainCache<braincache_memory::MemoryBackend> {
    static CACHE: std::sync::OnceLock<BrainCache<braincache_memory::MemoryBackend>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(BrainCache::default)
}

/// Lets `cache = expr` accept anything that dereferences to a `BrainCache` (a `&'static`
/// reference, a `LazyLock` static, a handle), and names the expected type in errors.
pub fn as_cache<B: Backend, C: Codec>(cache: &BrainCache<B, C>) -> &BrainCache<B, C> {
    cache
}

/// `ttl = secs`.
#[must_use]
pub fn ttl_secs(secs: u64) -> Option<Duration> {
    Some(Duration::from_secs(secs))
}

/// `ttl_ms = millis`.
#[must_use]
pub fn ttl_millis(millis: u64) -> Option<Duration> {
    Some(Duration::from_millis(millis))
}

/// No `ttl`: never expires.
pub const NO_TTL: Option<Duration> = None;

/// The function's path, from the type name of the marker function `__braincache_site` declared
/// in its body (`my_crate::module::function::__braincache_site`). The compiler's name includes
/// the impl's type or trait and any enclosing function, which `module_path!()` does not, so two
/// `new` functions of two types in one module get different keys.
///
/// In an `async fn` the marker sits in the body's coroutine, which the compiler names
/// `function::{{closure}}`; that part is dropped, so an async function has the key path a sync
/// function of the same name would have.
#[must_use]
pub fn site_path(marker_type_name: &'static str) -> &'static str {
    let path = marker_type_name
        .strip_suffix(SITE_SUFFIX)
        .unwrap_or(marker_type_name);
    path.strip_suffix("::{{closure}}").unwrap_or(path)
}

/// A key argument: anything `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`#[cache]` key argument of type `{Self}` does not implement `serde::Serialize`",
    label = "not `Serialize`, so it cannot be part of the cache key",
    note = "derive or implement `serde::Serialize` for it, or leave the argument out of the key with `#[cache(ignore = [name])]`"
)]
pub trait KeyArg: Serialize {}

impl<T: Serialize + ?Sized> KeyArg for T {}

/// Appends one key argument to `key`. The generated code calls it once per key argument, in
/// declaration order, each call spanned at its argument so a type that is not `Serialize` is
/// reported there.
#[inline]
pub fn key_arg<T: KeyArg + ?Sized>(key: &mut KeyBuilder, value: &T) {
    key.push(value);
}

/// A value the macro stores: `Serialize + DeserializeOwned`.
#[diagnostic::on_unimplemented(
    message = "`#[cache]` cannot store a `{Self}`: it must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "the cached value type",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it (values that borrow, like `&str`, cannot be cached: return an owned type)"
)]
pub trait CacheValue: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> CacheValue for T {}

/// A memoized call's key, or why it could not be built.
#[derive(Debug)]
pub struct Key {
    inner: Result<String, (String, CodecError)>,
    /// Built by a `<fn>_refresh` companion: run the function and store its result, without
    /// looking the key up.
    refresh: bool,
}

impl Key {
    /// The key, or `None` (counted and logged) when the arguments could not be encoded.
    pub(crate) fn usable<B: Backend, C: Codec>(self, cache: &BrainCache<B, C>) -> Option<String> {
        match self.inner {
            Ok(key) => Some(key),
            Err((path, source)) => {
                count_error(cache);
                warn_event!(
                    "braincache: #[cache] {path}: the arguments cannot be encoded as a key, \
                     running uncached: {source}"
                );
                None
            }
        }
    }

    /// What a `call*` helper does with this key: memoize under it, refresh it (a `<fn>_refresh`
    /// companion), or run the function uncached (counted and logged) when the arguments could
    /// not be encoded.
    pub(crate) fn plan<B: Backend, C: Codec>(self, cache: &BrainCache<B, C>) -> KeyPlan {
        let refresh = self.refresh;
        match self.usable(cache) {
            Some(key) if refresh => KeyPlan::Refresh(key),
            Some(key) => KeyPlan::Memoize(key),
            None => KeyPlan::Uncached,
        }
    }

    /// The key string, if the arguments could be encoded.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        self.inner.as_ref().ok().map(String::as_str)
    }

    /// The key, or an [`Error::InvalidKey`] saying why the arguments could not be encoded.
    pub(crate) fn into_result(self, op: Operation) -> crate::Result<String> {
        self.inner.map_err(|(path, source)| Error::InvalidKey {
            op,
            key: format!("{KEY_PREFIX}{path}:"),
            reason: format!("the arguments cannot be encoded as a key ({source})"),
        })
    }
}

/// Builds a key from the function's path and its key arguments (see the module docs).
#[derive(Debug)]
pub struct KeyBuilder {
    path: &'static str,
    /// `fn:v1:<path>:` and the hex of the arguments so far. postcard encodes a tuple as its
    /// elements' encodings one after the other, so appending each argument's encoding gives the
    /// encoding of the argument tuple.
    key: Result<String, CodecError>,
    refresh: bool,
}

impl KeyBuilder {
    /// A key for the function at `path`, with no arguments yet.
    #[must_use]
    pub fn new(path: &'static str) -> KeyBuilder {
        let mut key = String::with_capacity(KEY_PREFIX.len() + path.len() + 1 + 32);
        key.push_str(KEY_PREFIX);
        key.push_str(path);
        key.push(':');
        KeyBuilder {
            path,
            key: Ok(key),
            refresh: false,
        }
    }

    /// A key for a `<fn>_refresh` companion: the call it is passed to runs the function and
    /// stores the result without looking the key up.
    #[must_use]
    pub fn refreshing(path: &'static str) -> KeyBuilder {
        KeyBuilder {
            refresh: true,
            ..KeyBuilder::new(path)
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) {
        if let Ok(key) = &mut self.key {
            match Postcard.encode(value) {
                Ok(bytes) => push_hex(key, &bytes),
                Err(e) => self.key = Err(e),
            }
        }
    }

    /// The key, or the encoding error.
    #[must_use]
    pub fn finish(self) -> Key {
        let path = self.path;
        Key {
            inner: self.key.map_err(|e| (path.to_owned(), e)),
            refresh: self.refresh,
        }
    }
}

/// The key for `path` and a tuple of arguments, as the macro builds it.
pub fn key<A: Serialize + ?Sized>(path: &'static str, args: &A) -> Key {
    let mut key = KeyBuilder::new(path);
    key.push(args);
    key.finish()
}

/// `fn:v1:<path>:<lowercase hex of args>`.
#[must_use]
pub fn encode_key(path: &str, args: &[u8]) -> String {
    let mut key = String::with_capacity(KEY_PREFIX.len() + path.len() + 1 + 2 * args.len());
    key.push_str(KEY_PREFIX);
    key.push_str(path);
    key.push(':');
    push_hex(&mut key, args);
    key
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// The generated body of a `#[cache]` function returning a plain value.
pub fn call<B, C, T, F>(cache: &BrainCache<B, C>, key: Key, ttl: Option<Duration>, f: F) -> T
where
    B: Backend,
    C: Codec,
    T: CacheValue,
    F: FnOnce() -> T,
{
    run::<Plain<T>, B, C>(cache, key, ttl, f)
}

/// The generated body of a `#[cache]` function returning `Result`: only `Ok` is stored.
pub fn call_result<B, C, T, E, F>(
    cache: &BrainCache<B, C>,
    key: Key,
    ttl: Option<Duration>,
    f: F,
) -> Result<T, E>
where
    B: Backend,
    C: Codec,
    T: CacheValue,
    F: FnOnce() -> Result<T, E>,
{
    run::<Fallible<T, E>, B, C>(cache, key, ttl, f)
}

/// The generated body of a `#[cache(skip_none)]` function: `Some` is stored (as an
/// `Option<T>`, the same bytes as without `skip_none`), `None` is returned and not stored.
pub fn call_option<B, C, T, F>(
    cache: &BrainCache<B, C>,
    key: Key,
    ttl: Option<Duration>,
    f: F,
) -> Option<T>
where
    B: Backend,
    C: Codec,
    T: CacheValue,
    F: FnOnce() -> Option<T>,
{
    run::<Optional<T>, B, C>(cache, key, ttl, f)
}

/// The `call*` helpers' body: the key's plan, then the policy `P`.
fn run<P: Policy, B: Backend, C: Codec>(
    cache: &BrainCache<B, C>,
    key: Key,
    ttl: Option<Duration>,
    f: impl FnOnce() -> P::Out,
) -> P::Out {
    match key.plan(cache) {
        KeyPlan::Memoize(key) => memoize::<P, B, C>(cache, &key, ttl, f),
        KeyPlan::Refresh(key) => {
            let out = f();
            if let Some(value) = P::storable(&out) {
                store(cache, &key, ttl, value);
            }
            out
        }
        KeyPlan::Uncached => f(),
    }
}

/// The function's path, from inside one of its companions (`<fn>_cache_key`,
/// `<fn>_invalidate`, `<fn>_refresh`): the marker's path minus the companion's `suffix`.
#[must_use]
pub fn companion_site_path(marker_type_name: &'static str, suffix: &str) -> &'static str {
    let site = site_path(marker_type_name);
    site.strip_suffix(suffix).unwrap_or(site)
}

/// The body of a `<fn>_cache_key` companion.
///
/// # Errors
/// [`Error::InvalidKey`] when the arguments cannot be encoded.
pub fn key_string(key: Key) -> crate::Result<String> {
    key.into_result(Operation::Get)
}

/// The body of a `<fn>_invalidate` companion: deletes the entry; whether one was there.
///
/// # Errors
/// [`Error::InvalidKey`] when the arguments cannot be encoded; the backend's errors.
pub fn invalidate<B: Backend, C: Codec>(cache: &BrainCache<B, C>, key: Key) -> crate::Result<bool> {
    let key = key
        .into_result(Operation::Delete)
        .map_err(|e| cache.failed(e))?;
    cache.delete(&key)
}

/// Counts a cache error that the caller chose to bypass.
pub fn count_error<B: Backend, C: Codec>(cache: &BrainCache<B, C>) {
    cache.inner().counters.errors.bump(1);
}

/// The [`Freshness`](crate::Freshness) of `#[cache(ttl = …, stale = …, early_refresh = …,
/// lease = …)]` (seconds; `early_refresh` is beta).
pub fn freshness(
    ttl: Option<Duration>,
    stale_secs: Option<u64>,
    early_refresh: Option<f64>,
    lease_secs: Option<u64>,
) -> crate::Freshness {
    let mut f = crate::Freshness::new(ttl.unwrap_or(Duration::MAX));
    if let Some(s) = stale_secs {
        f = f.stale_while_revalidate(Duration::from_secs(s));
    }
    if let Some(beta) = early_refresh {
        f = f.early_refresh(beta);
    }
    if let Some(s) = lease_secs {
        f = f.lease(Duration::from_secs(s));
    }
    f
}

/// The generated body of a `#[cache]` function with `stale`, `early_refresh` or `lease`: memoized
/// through [`BrainCache::get_or_refresh`]. Cache errors never change the result: on a read
/// error the function runs uncached.
pub fn call_fresh<B, C, T, F>(
    cache: &BrainCache<B, C>,
    key: Key,
    freshness: &crate::Freshness,
    f: F,
) -> T
where
    B: Backend,
    C: Codec,
    T: CacheValue + Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(key) = key.usable(cache) else {
        return f();
    };
    let mut f = Some(f);
    let mut g = Some(move || match f.take() {
        Some(f) => Ok::<T, std::convert::Infallible>(f()),
        None => unreachable_after_run(),
    });
    match cache.refresh_load(&key, freshness, &mut g) {
        Ok(Loaded { value, .. }) => value,
        Err(LoadError::Init(never)) => match *never {},
        // Already counted and logged; the cache failed before running the function.
        Err(LoadError::Cache(_)) => match g.take() {
            Some(mut g) => match g() {
                Ok(value) => value,
                Err(never) => match never {},
            },
            None => unreachable_after_run(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_key_is_prefix_path_colon_lowercase_hex() {
        assert_eq!(encode_key("a::f", &[0x00, 0xab, 0x10]), "fn:v1:a::f:00ab10");
        assert_eq!(encode_key("a::f", &[]), "fn:v1:a::f:");
    }

    /// The builder appends each argument's encoding; that must be the tuple's encoding, which
    /// is what the module docs promise.
    #[test]
    fn appending_arguments_encodes_the_tuple() {
        let mut b = KeyBuilder::new("p");
        key_arg(&mut b, "ab");
        key_arg(&mut b, &300u32);
        key_arg(&mut b, &Some(vec![1u8]));
        let appended = b.finish();
        let tuple = key("p", &("ab", 300u32, Some(vec![1u8])));
        assert_eq!(appended.as_str(), tuple.as_str());
        assert_eq!(appended.as_str(), Some("fn:v1:p:026162ac02010101"));
    }

    #[test]
    fn site_path_strips_the_marker() {
        assert_eq!(site_path("c::m::f::__braincache_site"), "c::m::f");
        assert_eq!(site_path("unexpected"), "unexpected");
        assert_eq!(
            site_path("c::m::f::{{closure}}::__braincache_site"),
            "c::m::f"
        );
        assert_eq!(
            site_path("c::m::{{closure}}::f::__braincache_site"),
            "c::m::{{closure}}::f"
        );
    }
}
