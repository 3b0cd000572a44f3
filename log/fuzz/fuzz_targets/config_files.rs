//! Arbitrary text as a keeper's `keeper.properties` (ZooKeeper's `zoo.cfg` keys) and as a
//! broker's `server.properties`: every line is taken or refused with a typed error naming the
//! line; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = sluice_keeper::config::KeeperConfig::parse(text, Path::new("keeper.properties"));
    let _ = sluice_broker_config::BrokerConfig::parse(text, Path::new("server.properties"));
});
