//! `sluice-actors`: the actix actors of the keeper and the broker.
//!
//! Each actor here is a thin shell around a sans-IO core: it owns the core, turns incoming
//! messages into `handle_*(now, ..)` calls and timers into `tick(now)` calls, and carries out
//! the effects the core returns. Actors know nothing of bytes on a socket: they receive typed
//! messages from `sluice-net` services and send typed messages back.
//!
//! The actors arrive with the services that need them (see `docs/architecture.md`): keeper
//! sessions and znode watchers with the keeper, partition leaders, follower fetchers and
//! group coordinators with the broker. The transport they run on (`sluice-net`) is already
//! built and tested.
