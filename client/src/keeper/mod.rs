//! The keeper protocol and client.
pub mod client;
pub mod connect_string;
pub mod proto;
pub mod recipes;

pub use client::{KeeperClient, KeeperClientError, KeeperClientOptions, KeeperEvent, KeeperEvents};
pub use connect_string::ConnectString;
pub use recipes::{CacheEvent, CachedNode, Counter, DoubleBarrier, Lock, NodeCache, TreeCache};
pub use sluice_keeper_core::{Acl, CreateMode, EventType, Id, KeeperError, Stat};
