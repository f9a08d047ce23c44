//! The `#[cache]` attribute of [braincache](https://docs.rs/braincache): memoize a function in
//! a `BrainCache` — in memory, or in a redb or JSON file that survives restarts and is shared by
//! several processes.
//!
//! **Use it through the facade**, `braincache::cache` (the `macros` feature, on by default);
//! this crate only holds the macro. The generated code names nothing but
//! `::braincache::__private::…`, so depending on `braincache` is enough.
//!
//! ```
//! use braincache::cache;
//!
//! #[cache(ttl = 60)] // seconds; process-wide memory cache
//! fn heavy(x: u64, y: u64) -> u64 {
//!     x * y
//! }
//!
//! assert_eq!(heavy(6, 7), 42); // computed
//! assert_eq!(heavy(6, 7), 42); // served from the cache for the next 60 s
//! ```
//!
//! See [`macro@cache`] for the options, the supported functions and return types, and how cache
//! errors are handled.
//!
//! # Keys
//!
//! Keys outlive the program (a redb or JSON file keeps them across releases), so their encoding
//! is part of the contract, pinned by a test. A call is stored under
//!
//! ```text
//! fn:v1:<path>:<hex>
//! ```
//!
//! - `fn:v1:` marks a key made by `#[cache]`, encoding version 1. A future encoding gets a new
//!   version, so old entries are missed, never misread.
//! - `<path>` is the `name = "…"` option when given, else the function's full path as the
//!   compiler names it (`std::any::type_name` of a marker function inside it):
//!   `my_crate::module::function`, `my_crate::module::Type::method`,
//!   `<my_crate::Type as my_crate::Trait>::method`, `my_crate::module::outer::inner` for a
//!   function declared inside another. It includes the impl's type and any enclosing function,
//!   which `module_path!()` alone would not, so two `new` functions of two types in one module
//!   get different keys.
//! - `<hex>` is lowercase hex of the [postcard](https://docs.rs/postcard) encoding of the tuple of
//!   key arguments: every argument in declaration order (`&self` first), minus those named in
//!   `ignore = [..]` and `_` patterns. Empty for a function without key arguments.
//!
//! Why different calls never share a key:
//!
//! - The hex part never contains `:`, so the last `:` splits a key back into exactly one path
//!   and one argument encoding: two functions with different paths never share a key, whatever
//!   their arguments.
//! - For one function (one signature), postcard's encoding of the argument tuple is injective:
//!   strings, byte strings and sequences are length-prefixed, enums carry their variant index,
//!   and a tuple is its elements' encodings in order. (This assumes each argument's `Serialize`
//!   keeps what tells its values apart, as derived and standard impls do.) `f("ab", "c")` is `02 61 62 01 63`,
//!   `f("a", "bc")` is `01 61 02 62 63`.
//!
//! For example `pinned("ab", 300, true, vec![-1, 2], Some('é'))` in the integration test crate
//! `macros` is stored under `fn:v1:macros::pinned:026162ac02010201040102c3a9`.
//!
//! What changes a key (the old entries are then simply missed, and expire or are purged): the
//! function's path (a rename or a move — set `name` to keep keys across refactors), its key
//! arguments' types or order, and their serde representation. A key argument whose `Serialize`
//! output is not deterministic (a `HashMap`'s order differs between processes) gives misses
//! across processes: use a `BTreeMap`. Without `name`, the path is the compiler's
//! `type_name`, whose exact text Rust does not promise to keep between compiler versions; for
//! free functions and inherent methods it has always been the plain path above, and the pinned
//! test would show a change. Set `name` where keys must survive any toolchain upgrade.

#![deny(missing_docs)]

mod companions;
mod expand;
mod options;

use proc_macro::TokenStream;

/// Memoizes a function: the first call with given arguments runs it and stores the result; later
/// calls with the same arguments return the stored result until it expires.
///
/// ```
/// use braincache::cache;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Price {
///     cents: u64,
/// }
///
/// #[cache(ttl = 300)]
/// fn price(sku: &str, quantity: u32) -> Price {
///     Price { cents: 1999 * u64::from(quantity) } // imagine a slow lookup
/// }
///
/// assert_eq!(price("A-1", 2), Price { cents: 3998 });
/// assert_eq!(price("A-1", 2), Price { cents: 3998 }); // from the cache
/// ```
///
/// # Options
///
/// | Option | Meaning | Default |
/// |---|---|---|
/// | `ttl = 60` | Entries expire this many seconds after they are stored. Any `u64` expression (a `const`, a call); evaluated on each call. | never expire |
/// | `ttl_ms = 1500` | The same, in milliseconds. | |
/// | `cache = expr` | The cache: an expression yielding `&BrainCache<B, C>` or something that dereferences to one — a `static` `LazyLock<BrainCache<_>>`, a `fn() -> &'static BrainCache<_>`. Evaluated on each call. | a process-wide, unbounded memory cache |
/// | `name = "app::fetch"` | The key's path part, instead of the function's path: keeps keys stable across renames and moves. Must be unique among the functions sharing a cache. | the function's full path |
/// | `ignore = [client, self]` | Arguments left out of the key; they need not be `Serialize`. | none |
/// | `skip_none` | For an `Option` return: `None` is returned but not stored. | `None` is stored |
/// | `result` | Treat the return type as a `Result` (for an alias whose name is not `Result`). | decided by the type's name |
/// | `crate = "my_braincache"` | The path of the braincache crate, when the dependency is renamed. | `::braincache` |
/// | `no_companions` | Do not generate the `_cache_key`, `_invalidate` and `_refresh` companions (see below). Needed in a trait impl, which may hold only the trait's items. | generated |
///
/// `ttl = 0` is refused: a zero TTL expires at once (the Python original read it as "forever";
/// here "forever" is no `ttl`). A TTL that evaluates to zero at run time is allowed and caches
/// nothing.
///
/// # Return types
///
/// - Any `T: Serialize + DeserializeOwned` is stored as is. Falsy values (`0`, `""`, `false`,
///   empty collections) are values: stored once, never recomputed.
/// - `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>` (any type whose last path segment is
///   `Result`): only `Ok(T)` is stored (as a `T`); an `Err` is returned and the next call runs
///   again. `E` need not be `Serialize`. A type alias with another name (`type Out =
///   Result<u32, E>`) is a plain value — `Result` is `Serialize`, so its `Err`s would be
///   stored — unless you add the `result` flag.
/// - `Option<T>`: `None` is a value and is stored, unless `skip_none` is given. With
///   `skip_none` the stored bytes are the same `Option<T>` encoding, so adding or removing the
///   flag keeps existing entries readable.
///
/// ```
/// use braincache::cache;
///
/// #[derive(Debug)]
/// struct Offline; // not Serialize: errors are never stored
///
/// #[cache(ttl = 60)]
/// fn fetch(url: String) -> Result<String, Offline> {
///     if url.starts_with("https://") { Ok(format!("body of {url}")) } else { Err(Offline) }
/// }
///
/// #[cache(skip_none)]
/// fn find_user(id: u32) -> Option<String> {
///     (id == 1).then(|| "ada".to_string()) // `None` is not stored: a later call may find one
/// }
///
/// assert!(fetch("http://x".into()).is_err()); // not stored, the next call runs again
/// assert_eq!(fetch("https://x".into()).unwrap(), "body of https://x");
/// assert_eq!(find_user(2), None);
/// ```
///
/// # Functions
///
/// - Free functions, associated functions (no `self`) and nested functions.
/// - `&self` methods: `self` is part of the key, so `Self` must be `Serialize`; or leave it out
///   with `ignore = [self]` when the result does not depend on it.
/// - Refused with a compile error pointing at the offending token: `self` taken by value
///   (`self`, `self: Box<Self>`), `&mut self` and `&mut` arguments (a cache hit would skip the
///   body's writes), `const fn`, generic type or const parameters and
///   `impl Trait` arguments (the key holds argument values, not types, so `f::<u32>(1)` and
///   `f::<u64>(1)` could collide; lifetime parameters are fine), argument patterns other than a
///   plain name (destructure in the body instead), a function without a return value, an
///   argument that is not `Serialize` (unless ignored), a return type that is not
///   `Serialize + DeserializeOwned`, and unknown or repeated options.
/// - `async fn` (braincache's `async` feature; without it the function is refused with a
///   message naming the feature), `&self` async methods included: the same keys as a sync
///   function of the same path or `name` (so the two share entries), `cache = …` takes a
///   `braincache::future::BrainCache` (`sync_cache.to_async()`), the default is the async face
///   of the process-wide memory cache, and concurrent calls wait for one computation without
///   blocking their thread. The body runs as an async closure. With `stale`, `early_refresh`
///   or `lease` it goes through `future::BrainCache::get_or_refresh`, whose refreshes run as
///   spawned tokio tasks: the arguments are moved into them, so they must be owned
///   (`Send + 'static`: no `&self`, no borrowed arguments).
/// - `return` and `?` in the body work as usual (the body becomes a closure returning the
///   function's type).
///
/// # Invalidating and refreshing one call
///
/// Next to each memoized function `f`, with the same visibility (in its module, or in its `impl`
/// block), `#[cache]` generates three companions:
///
/// | companion | does |
/// |---|---|
/// | `f_cache_key(&a, &b) -> braincache::Result<String>` | the key `f(a, b)` is stored under |
/// | `f_invalidate(&a, &b) -> braincache::Result<bool>` | deletes that entry (whether one was there): the next `f(a, b)` computes again |
/// | `f_refresh(a, b) -> R` | runs `f`'s body now, whatever is stored, stores the result as `f` would (`Ok` only for a `Result`, `Some` only with `skip_none`) with `f`'s TTL, and returns it |
///
/// - `f_cache_key` and `f_invalidate` take the key arguments only (not those in `ignore`), by
///   reference; `f_refresh` takes all of `f`'s arguments. A `&self` method's companions are
///   `&self` methods: `svc.f_invalidate(&a)`.
/// - They use `f`'s cache, `name` and `crate`. Arguments that cannot be encoded are an
///   `Error::InvalidKey` from `f_cache_key` and `f_invalidate`; `f_refresh` then runs `f`
///   uncached. As for `f`, a cache error never changes `f_refresh`'s result (it is counted and
///   logged). A concurrent call of `f` that is computing may store its older value after a
///   refresh: the last write wins.
/// - In a trait impl, which may hold only the trait's items, add `no_companions`.
///
/// ```
/// use braincache::cache;
/// # use std::sync::atomic::{AtomicU32, Ordering};
/// # static VERSION: AtomicU32 = AtomicU32::new(1);
///
/// #[derive(Debug)]
/// struct Offline;
///
/// #[cache(ttl = 3600)]
/// fn fetch(url: String) -> Result<String, Offline> {
///     Ok(format!("{url} v{}", VERSION.fetch_add(1, Ordering::SeqCst))) // imagine an HTTP GET
/// }
///
/// # fn main() -> braincache::Result<()> {
/// let url = "https://example.com/".to_string();
/// assert_eq!(fetch(url.clone()).unwrap(), "https://example.com/ v1");
/// assert_eq!(fetch(url.clone()).unwrap(), "https://example.com/ v1"); // cached
///
/// // `--refresh`: fetch again now and keep the new page.
/// assert_eq!(fetch_refresh(url.clone()).unwrap(), "https://example.com/ v2");
/// assert_eq!(fetch(url.clone()).unwrap(), "https://example.com/ v2");
///
/// // `--forget`: drop the entry; the next call fetches.
/// assert!(fetch_invalidate(&url)?);
/// assert_eq!(fetch(url.clone()).unwrap(), "https://example.com/ v3");
///
/// // The key, for `BrainCache::get` / `has` / `delete` or the `braincache` command.
/// assert!(fetch_cache_key(&url)?.starts_with("fn:v1:"));
/// # Ok(())
/// # }
/// ```
///
/// # A durable, shared cache
///
/// `cache = …` takes any `BrainCache`: with the redb or JSON file backend, results survive
/// restarts and every process that opens the file shares them.
///
/// ```
/// use braincache::backend::FileBackend; // or RedbBackend (the `redb` feature)
/// use braincache::{BrainCache, cache};
/// use std::sync::LazyLock;
/// # fn cache_path() -> std::path::PathBuf {
/// #     std::env::temp_dir().join(format!("braincache-macros-doc-{}.json", std::process::id()))
/// # }
///
/// static CACHE: LazyLock<BrainCache<FileBackend>> =
///     LazyLock::new(|| BrainCache::new(FileBackend::open(cache_path()).expect("open the cache")));
///
/// #[cache(ttl = 3600, cache = CACHE, name = "reports::monthly")]
/// fn monthly_report(year: u16, month: u8) -> Vec<u64> {
///     vec![u64::from(year), u64::from(month)] // imagine an hour of work
/// }
///
/// assert_eq!(monthly_report(2024, 5), [2024, 5]);
/// // The key: `name`, then hex of postcard((2024u16, 5u8)).
/// assert!(CACHE.has("fn:v1:reports::monthly:e80f05").unwrap());
/// # let _ = std::fs::remove_file(cache_path());
/// # let _ = std::fs::remove_file(cache_path().with_extension("json.lock"));
/// ```
///
/// # Concurrency and cache errors
///
/// - Concurrent calls with the same arguments in one process run the body once; the others
///   wait and receive its value (`BrainCache::get_or_insert_with`). With `skip_none`, waiters
///   receive the `None` too; after an `Err` they run the body themselves. Across processes each
///   may compute; the last write wins.
/// - A cache error never changes the function's result: when the cache cannot be read (backend
///   down, arguments that cannot be encoded as a key) the body runs uncached; when the result
///   cannot be stored it is returned anyway. Each error is counted in `Stats::errors` and logged
///   through `tracing` (the facade's `tracing` feature).
/// - A stored value that no longer decodes (the return type changed) is a decode error: the body
///   runs and its result replaces the stale entry. postcard is not self-describing, though, so a
///   value of the old type may also decode as a wrong value of the new type (a `String` reads as
///   a `Vec<u8>` of its bytes): **change `name` (for example `name = "report.v2"`) when you
///   change a return type**, and old entries are missed instead.
///
/// # Limitations
///
/// - In a generic `impl<T> Type<T>` block and in a trait's default method, the key's path is the
///   same for every `T` or implementing type (the compiler names it `Type<_>::method`,
///   `Trait::method`); key arguments (a `Serialize` `&self`) or `name` must tell them apart.
///   Two functions with the same name declared in two blocks or closures of one function share
///   a path, too.
/// - Arguments are encoded on every call (and the key is hex, twice their size); very large
///   arguments make large keys, which some backends may refuse — a cache error, so the body
///   runs uncached.
#[proc_macro_attribute]
pub fn cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expand::expand(attr.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        // Keep the function as written next to the error, so its callers still compile and only
        // the real mistake is reported.
        Err(e) => {
            let error = e.into_compile_error();
            quote::quote!(#error #item).into()
        }
    }
}
