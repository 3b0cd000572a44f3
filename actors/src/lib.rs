//! `sluice-actors`: the actix actors of the keeper and the broker.
//!
//! Each actor here is a thin shell around a sans-IO core: it owns the core, turns incoming
//! messages into `handle_*(now, ..)` calls and timers into `tick(now)` calls, and carries out
//! the effects the core returns. Actors know nothing of bytes on a socket: they receive typed
//! messages from `sluice-net` services and send typed messages back.
//!
//! - [`broker`]: the broker's actors (partitions, fetchers, the controller, the replica and
//!   log managers, group coordinators), one file each.
//! - [`clock`]: the one wall clock the shells read; cores are handed `now`.
//!
//! - [`keeper`]: the keeper's actors (the database, a session per client), one file each.

pub mod broker;
pub mod clock;
pub mod keeper;

#[doc(hidden)]
pub use tracing;

/// Enters the span of one actor handler, `handle` at debug level, named `"<Actor> <Message>"`
/// (its `otel.name`) with `actor` and `message` fields; returns the guard, to hold for the
/// handler's body:
///
/// ```
/// let _span = sluice_actors::handling!("Partition", "Append");
/// ```
///
/// At the default `info` level the span is not even made (a cached callsite check); with
/// `RUST_LOG=debug` (or a directive for the actor's module) every handler shows in the logs'
/// span lists and, when traces are exported, as a span of its own. Handlers that serve a
/// traced request open that request's span inside this one.
#[macro_export]
macro_rules! handling {
    ($actor:literal, $message:literal) => {
        $crate::tracing::debug_span!(
            "handle",
            otel.name = concat!($actor, " ", $message),
            actor = $actor,
            message = $message
        )
        .entered()
    };
}
