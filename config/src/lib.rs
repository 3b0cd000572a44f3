//! `sluice-config`: reading Kafka / ZooKeeper style `.properties` files.
//!
//! Every service's configuration (keeper's zoo.cfg keys, the broker's server.properties,
//! clients' --command-config) is read through [`properties`], so every bad line is reported
//! the same way: file, line number, key, and why.
pub mod properties;
pub mod stores;

pub use properties::{Entry, PropertiesError};
