//! `sluice-client`: the TLS-secured client SDK.
//!
//! - [`keeper`]: the keeper protocol (`sluice-keeper/1`) and an async keeper client with
//!   chroot, session resumption across servers and watch events.
pub mod broker;
pub mod keeper;
