//! Optional logging: with the `tracing` feature these forward to `tracing`; without it they
//! compile to nothing (the arguments are type-checked but never formatted).

macro_rules! debug_event {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        ::tracing::debug!($($arg)*);
        #[cfg(not(feature = "tracing"))]
        let _ = format_args!($($arg)*);
    }};
}

macro_rules! warn_event {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        ::tracing::warn!($($arg)*);
        #[cfg(not(feature = "tracing"))]
        let _ = format_args!($($arg)*);
    }};
}

pub(crate) use {debug_event, warn_event};
