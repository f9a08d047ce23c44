//! One memcached server: its pool of connections, and the errors its calls turn into.
//!
//! The `memcache` crate's pool (r2d2) returns a connection to the pool even after an I/O error or
//! a timeout (`ConnectionManager::has_broken` is `false`), and such a connection may still hold a
//! late reply. So after any I/O error or garbled reply on a server, this module drops that
//! server's whole pool and starts a new one: later calls never read a reply meant for an earlier
//! one. (A call that took a connection from the old pool in the instant before the swap reads
//! from it once; replies to `get` name their key, and a reply for another key is an error, not a
//! value.)

use braincache_core::net::NetOptions;
use braincache_core::{Error, Operation};
use memcache::{Client, ConnectionManager, MemcacheError, Url};
use std::fmt;
use std::io;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

pub(crate) struct Server {
    /// `host:port`, for messages and the hash ring.
    pub(crate) addr: String,
    url: Url,
    pool_size: u32,
    connect_timeout: Duration,
    response_timeout: Duration,
    client: RwLock<Arc<Client>>,
}

impl Server {
    pub(crate) fn new(url: &str, options: &NetOptions) -> Result<Server, String> {
        let pool_size = u32::try_from(options.pool_size()).unwrap_or(u32::MAX);
        let (connect_timeout, response_timeout) =
            (options.connect_timeout(), options.response_timeout());
        let mut url = Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if !matches!(url.scheme(), "memcache" | "memcache+tcp") {
            return Err(format!(
                "unsupported URL scheme {:?}: use memcache://host:port",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("URL {url} names no host"))?
            .to_owned();
        let port = url.port().unwrap_or(11211);
        // Our settings replace any query: the text protocol (its `get` replies name their key),
        // per-socket read and write timeouts.
        url.set_query(None);
        url.query_pairs_mut()
            .append_pair("protocol", "ascii")
            .append_pair("timeout", &response_timeout.as_secs_f64().to_string());
        let client = new_client(&url, pool_size, connect_timeout)?;
        Ok(Server {
            addr: format!("{host}:{port}"),
            url,
            pool_size,
            connect_timeout,
            response_timeout,
            client: RwLock::new(Arc::new(client)),
        })
    }

    /// Runs `f` on this server's client. On an I/O error or a garbled reply, the pool is
    /// replaced (see the module docs); when the error was a dropped connection rather than a
    /// timeout (the server restarted while the connection sat idle), `f` runs once more on the
    /// new pool, so the first call after a restart succeeds.
    pub(crate) fn run<T>(
        &self,
        call: Call<'_>,
        mut f: impl FnMut(&Client) -> Result<T, MemcacheError>,
    ) -> Result<T, Error> {
        let mut retried = false;
        loop {
            let client = Arc::clone(&self.client.read().unwrap_or_else(PoisonError::into_inner));
            match f(&client) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let poisoned = matches!(
                        e,
                        MemcacheError::IOError(_)
                            | MemcacheError::ParseError(_)
                            | MemcacheError::ServerError(memcache::ServerError::BadResponse(_))
                    );
                    if poisoned {
                        self.reset(&client);
                    }
                    let dropped = matches!(&e, MemcacheError::IOError(io) if !is_timeout(io));
                    if dropped && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(self.error(call, e));
                }
            }
        }
    }

    /// Replaces the pool, unless another thread already did since `failed` was taken.
    fn reset(&self, failed: &Arc<Client>) {
        let mut current = self.client.write().unwrap_or_else(PoisonError::into_inner);
        if Arc::ptr_eq(&current, failed)
            && let Ok(fresh) = new_client(&self.url, self.pool_size, self.connect_timeout)
        {
            *current = Arc::new(fresh);
        }
    }

    fn error(&self, call: Call<'_>, e: MemcacheError) -> Error {
        let server = self.addr.clone();
        let source: Box<dyn std::error::Error + Send + Sync> = match e {
            // A socket timeout is `WouldBlock` on Unix: report it as `TimedOut`, the kind
            // `Error::is_timeout` looks for, keeping the original as its cause.
            MemcacheError::IOError(io) if is_timeout(&io) => Box::new(ServerTimeout {
                server,
                after: self.response_timeout,
                write: call.write,
                io: io::Error::new(io::ErrorKind::TimedOut, io),
            }),
            MemcacheError::PoolError(e) => Box::new(Unreachable {
                server,
                after: self.connect_timeout,
                cause: e.to_string(),
            }),
            MemcacheError::ServerError(memcache::ServerError::Error(msg))
                if msg.contains("too large") =>
            {
                Box::new(ValueTooLarge {
                    size: call.size,
                    limit: None,
                    server: Some(format!("{server}: {}", msg.trim())),
                })
            }
            other => Box::new(ServerFailure {
                server,
                cause: other,
            }),
        };
        Error::backend(call.op, crate::BACKEND_NAME, call.key, source)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// What a call was doing, for its error.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) op: Operation,
    pub(crate) key: Option<&'a str>,
    /// A write: its outcome is unknown when it times out.
    pub(crate) write: bool,
    /// Bytes sent, for a refused value.
    pub(crate) size: usize,
}

fn new_client(url: &Url, pool_size: u32, connect_timeout: Duration) -> Result<Client, String> {
    // r2d2 defaults to a `version` round trip on every checkout (`test_on_check_out`), which would
    // double the cost of a `get`; a connection closed by the server is handled by `Server::run`.
    let pool = r2d2::Pool::builder()
        .max_size(pool_size.max(1))
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(connect_timeout)
        .build_unchecked(ConnectionManager::new(url.clone()));
    Client::with_pool(pool).map_err(|e| e.to_string())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// A value larger than the memcached item limit: refused before it is sent
/// ([`MemcachedBackendBuilder::item_limit`](crate::MemcachedBackendBuilder::item_limit)), or
/// refused by the server. Reached through [`std::error::Error::source`] of the
/// [`Error::Backend`] a `set` returns, with `downcast_ref::<ValueTooLarge>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueTooLarge {
    size: usize,
    limit: Option<usize>,
    server: Option<String>,
}

impl ValueTooLarge {
    pub(crate) fn new(size: usize, limit: usize) -> ValueTooLarge {
        ValueTooLarge {
            size,
            limit: Some(limit),
            server: None,
        }
    }

    /// The size of the stored item in bytes: the encoded value plus braincache's header.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// The configured item limit it exceeds; `None` when the server refused it (its own limit,
    /// memcached's `-I` option, is smaller than the configured one).
    #[must_use]
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }
}

impl fmt::Display for ValueTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.limit, &self.server) {
            (Some(limit), _) => write!(
                f,
                "the item is {} bytes, over the memcached item limit of {limit} bytes (the backend's \
                 item_limit option; memcached's own limit is its -I option, 1 MiB by default)",
                self.size
            ),
            (None, server) => write!(
                f,
                "the item is {} bytes, over the server's item limit (memcached's -I option, 1 \
                 MiB by default): {}",
                self.size,
                server.as_deref().unwrap_or("refused")
            ),
        }
    }
}

impl std::error::Error for ValueTooLarge {}

/// The server did not answer within the response timeout.
#[derive(Debug)]
struct ServerTimeout {
    server: String,
    after: Duration,
    write: bool,
    io: io::Error,
}

impl fmt::Display for ServerTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memcached at {} did not answer within {:?} (the response timeout)",
            self.server, self.after
        )?;
        if self.write {
            f.write_str("; outcome unknown: the write may or may not have been applied")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerTimeout {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.io)
    }
}

/// No connection could be had within the connect timeout: nothing was sent.
#[derive(Debug)]
struct Unreachable {
    server: String,
    after: Duration,
    cause: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no connection to memcached at {} within {:?} (the connect timeout; nothing was \
             sent): {}",
            self.server, self.after, self.cause
        )
    }
}

impl std::error::Error for Unreachable {}

/// Anything else the client or the server reported.
#[derive(Debug)]
struct ServerFailure {
    server: String,
    cause: MemcacheError,
}

impl fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memcached at {}: {}", self.server, self.cause)
    }
}

impl std::error::Error for ServerFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}
