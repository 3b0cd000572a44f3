//! Arbitrary bytes as a keeper member's Raft log segment (`dataDir/raft/log-*.seg`): opening
//! it recovers the valid prefix (cutting a torn tail) or refuses with a typed error; it never
//! panics, and what was recovered opens again the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_ensemble::log_store::LogStore;
use sluice_ensemble::Io;

mod scratch;

fuzz_target!(|data: &[u8]| {
    let dir = scratch::scratch_dir();
    std::fs::write(dir.path().join("log-0000000001.seg"), data).expect("write the segment");
    let first = match LogStore::open_with(dir.path(), Io::Simulated) {
        Ok(log) => log.last_index(),
        Err(_) => return,
    };
    let again = LogStore::open_with(dir.path(), Io::Simulated).expect("a recovered log opens again");
    assert_eq!(again.last_index(), first, "the second open recovered something else");
});
