//! Arbitrary bytes as a keeper's snapshot: a member's `dataDir/raft/snapshot-<index>.bin`
//! (its metadata and state) and a standalone keeper's `dataDir/snapshot.<zxid>`. Each file
//! is written with its checksum made right for the bytes, so that the decoder is reached
//! rather than the checksum test (a random mutation would almost never pass it).
//!
//! Never panics, and never refuses to start: an unreadable snapshot is skipped (the log, or
//! the leader, has what it held). A state that loads answers for every node it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_ensemble::state_machine::StateMachine;
use sluice_ensemble::store::Store;
use std::sync::Arc;

mod scratch;

fuzz_target!(|data: &[u8]| {
    // A member's snapshot: CRC-32C (little-endian) of the body, then the body.
    let dir = scratch::scratch_dir();
    let mut file = crc32c::crc32c(data).to_le_bytes().to_vec();
    file.extend_from_slice(data);
    std::fs::write(dir.path().join(format!("snapshot-{:020}.bin", 7)), &file).expect("write the snapshot");
    let (_, state, _) = StateMachine::open(dir.path(), 1, Arc::new(|_| {}), 2)
        .expect("a member starts whatever its snapshot holds");
    check(&state);

    // A standalone keeper's snapshot: magic, CRC-32C (big-endian), body; both versions.
    for magic in [b"SLKSNAP3", b"SLKSNAP2", b"SLKSNAP1"] {
        let dir = scratch::scratch_dir();
        let mut file = magic.to_vec();
        file.extend_from_slice(&crc32c::crc32c(data).to_be_bytes());
        file.extend_from_slice(data);
        std::fs::write(dir.path().join(format!("snapshot.{:016x}", 7)), &file).expect("write the snapshot");
        let (_, recovered) = Store::open(dir.path(), 1000).expect("a keeper starts whatever its snapshot holds");
        check(&recovered.state);
    }
});

/// Reads the loaded tree as a server would answer clients, from the root down (a bounded
/// walk): whatever the snapshot held, no read panics.
fn check(state: &sluice_keeper_core::state::KeeperState) {
    let tree = &state.tree;
    let _ = tree.node_count();
    let _ = tree.descendants("/");
    let mut todo = vec!["/".to_string()];
    let mut visited = 0;
    while let Some(path) = todo.pop() {
        visited += 1;
        if visited > 256 {
            break;
        }
        let _ = tree.get(&path);
        let _ = tree.exists(&path);
        let _ = tree.acl(&path);
        let _ = tree.kind(&path);
        if let Ok((children, _)) = tree.children(&path) {
            for c in children.into_iter().take(16) {
                todo.push(if path == "/" { format!("/{c}") } else { format!("{path}/{c}") });
            }
        }
    }
    for session in state.sessions.keys().take(16) {
        let _ = tree.ephemerals(*session);
    }
}
