//! Arbitrary bytes as what the keeper's ZooKeeper door reads: a connection's first four
//! bytes (a four-letter word or a size), a connect request, and a request frame (header and
//! body), with the answer a multi's decoded ops would get framed.
//!
//! Never panics: every input is a request the door serves, one it answers UNIMPLEMENTED, or
//! an error that closes the connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_zookeeper_proto::{
    decode_request, four_letter_word, reply, write_multi, ConnectRequest, MultiResult, Request,
};

fuzz_target!(|data: &[u8]| {
    if let [a, b, c, d, ..] = *data {
        let _ = four_letter_word([a, b, c, d]);
    }
    let _ = ConnectRequest::decode(data);
    if let Ok(framed) = decode_request(data) {
        if let Request::Multi(ops) = &framed.request {
            let results: Vec<MultiResult> = ops.iter().map(|_| MultiResult::Error(0)).collect();
            let frame = reply(framed.xid, 0, 0, |w| write_multi(w, &results));
            assert!(frame.len() >= 20, "a reply header is 16 bytes after the size");
        }
    }
});
