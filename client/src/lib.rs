//! `sluice-client`: the TLS-secured client SDK.
//!
//! - [`keeper`]: the keeper protocol (`sluice-keeper/1`) and an async keeper client with
//!   chroot, session resumption across servers and watch events.
//! - [`broker`]: the broker protocol (`sluice-broker/2`) and the admin, producer and
//!   consumer clients (Kafka's settings, partitioner and delivery rules), with their
//!   configuration.
pub mod broker;
pub mod keeper;
