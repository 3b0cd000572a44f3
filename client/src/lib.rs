//! `sluice-client`: the TLS-secured client SDK.
//!
//! - [`keeper`]: the keeper protocol (`sluice-keeper/1`) and an async keeper client with
//!   chroot, session resumption across servers and watch events.
//!
//! The protocols themselves are declared in `sluice-proto`; this crate re-exports only the
//! messages a client sends and receives (no server handler traits, nothing brokers say to
//! each other).
//! - [`broker`]: the broker protocol (`sluice-broker/3`) and the admin, producer and
//!   consumer clients (Kafka's settings, partitioner and delivery rules), with their
//!   configuration.
pub mod broker;
pub mod keeper;

pub use broker::{tls_files_from_env, tls_from_env};
