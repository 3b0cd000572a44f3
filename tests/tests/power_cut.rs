//! Power cuts: what a SIGKILL cannot show. The keeper's and the brokers' data sit on a lazy
//! filesystem (`sluice_tests::lazyfs`, a FUSE layer in the manner of Jepsen's LazyFS) that
//! forgets, at a cut, every write that was never synced, or keeps a part of those writes, torn
//! and out of order, as the seed chooses. The processes are SIGKILLed, the power is cut, they
//! restart on what is left; every write they acknowledged as durable must be there.

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use sluice_tests::lazyfs::{Cut, LazyFs};

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The layer itself: synced bytes stay, unsynced ones go (or come back in part when the seed
/// says so), metadata stays.
#[test]
fn the_lazy_filesystem_forgets_unsynced_writes_and_keeps_synced_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = dir.path().join("disk");
    std::fs::create_dir(&at).expect("mount point");
    let fs = LazyFs::mount(&at);

    let log = at.join("log");
    let mut f = std::fs::File::create(&log).expect("create");
    f.write_all(b"synced-").expect("write");
    f.sync_data().expect("fdatasync");
    f.write_all(b"unsynced").expect("append");
    f.write_all_at(b"S", 0).expect("overwrite");
    drop(f);
    std::fs::write(at.join("never"), b"never synced").expect("write");
    let ckpt = at.join("checkpoint");
    std::fs::write(&ckpt, b"old, synced").expect("write");
    std::fs::File::open(&ckpt).and_then(|f| f.sync_all()).expect("fsync");
    // The classic: a new version written beside it and renamed over it, never synced.
    std::fs::write(at.join("checkpoint.tmp"), b"new, never synced").expect("write");
    std::fs::rename(at.join("checkpoint.tmp"), &ckpt).expect("rename");
    std::fs::create_dir(at.join("sub")).expect("mkdir");
    assert_eq!(read(&log), b"Synced-unsynced", "before the cut, reads see every write");

    let report = fs.power_cut(Cut::LoseAll);
    println!("{report}");
    assert_eq!(read(&log), b"synced-", "the synced bytes, and only those");
    assert_eq!(read(&at.join("never")), b"", "a file never synced survives empty");
    assert_eq!(read(&ckpt), b"", "renamed over the synced one, unsynced: empty");
    assert!(at.join("sub").is_dir(), "metadata is durable at once");
    assert_eq!(report.files, 3);
    assert_eq!(report.kept + report.torn, 0);

    // Seeded cuts of an append-only file: the synced prefix always, then each byte is either
    // the one written there or a hole (zero); the seeds do not all give the same state.
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..24 {
        let mut f = std::fs::File::create(&log).expect("create");
        f.write_all(b"base:").expect("write");
        f.sync_data().expect("fdatasync");
        for i in 0..8u8 {
            f.write_all(&[b'a' + i; 4]).expect("append");
        }
        drop(f);
        let report = fs.power_cut(Cut::Seeded(seed));
        let got = read(&log);
        assert!(got.starts_with(b"base:"), "seed {seed}: the synced prefix is gone: {got:?} ({report})");
        for (i, &b) in got[5..].iter().enumerate() {
            let written = b'a' + (i / 4) as u8;
            assert!(b == written || b == 0, "seed {seed}: byte {i} is {b}, neither written nor a hole");
        }
        outcomes.insert(got);
    }
    assert!(outcomes.len() > 3, "24 seeds gave only {} different states", outcomes.len());
    drop(fs);
    assert!(!at.join("sub").exists(), "unmounted on drop");
}
