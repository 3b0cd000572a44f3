//! The broker SDK: the `sluice-broker/1` protocol and async admin, producer and consumer
//! clients over mutually authenticated QUIC.
pub mod proto;
