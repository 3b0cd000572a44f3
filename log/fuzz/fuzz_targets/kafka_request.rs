//! Arbitrary bytes as a request frame on the brokers' Kafka door, down the path a real one
//! takes to its handler: the header (`read_head`), the body (`decode_request`), and for a
//! produce each partition's record batches as the partition's admission reads them.
//!
//! Never panics: every input is either a request the handlers get, or an error the door
//! answers or closes the connection with.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_kafka_proto::{decode_request, read_head, Request};
use sluice_log::batch::batches;

fuzz_target!(|data: &[u8]| {
    let mut frame = Bytes::copy_from_slice(data);
    let Ok(head) = read_head(&mut frame) else { return };
    let Ok(request) = decode_request(&head, &mut frame) else { return };
    if let Request::Produce(produce) = request {
        for topic in &produce.topic_data {
            for partition in &topic.partition_data {
                if let Some(records) = &partition.records {
                    for batch in batches(records) {
                        let Ok(batch) = batch else { break };
                        let _ = batch.records(1 << 20).map(|r| r.len());
                    }
                }
            }
        }
    }
});
