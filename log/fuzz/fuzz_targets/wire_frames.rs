//! Arbitrary bytes as a frame's payload on each of Sluice's own QUIC protocols (the keeper's
//! client protocol, the brokers' client and inter-broker protocols, the keeper members' peer
//! protocol): the envelope (version, correlation id, trace context) and the request in it,
//! and as a `traceparent` header value.
//!
//! Never panics. What decodes encodes again, and that decodes to the same request: a server
//! never answers a request it read differently from how it would write it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use sluice_net::frame::{self, TraceContext};
use sluice_net::Protocol;
use sluice_proto::broker::BrokerProtocol;
use sluice_proto::interbroker::InterBrokerProtocol;
use sluice_proto::keeper::KeeperProtocol;
use sluice_proto::peer::PeerProtocol;

fn round_trip<P: Protocol>(payload: &Bytes)
where
    P::Request: Serialize + DeserializeOwned,
{
    let Ok(env) = frame::decode::<P::Request>(payload) else { return };
    let again = frame::encode(&env, u32::MAX).expect("a decoded request encodes");
    let bytes = Bytes::from(again.to_vec());
    // The encoded frame starts with its 4-byte length.
    let decoded = frame::decode::<P::Request>(&bytes.slice(4..)).expect("what was encoded decodes");
    assert_eq!(format!("{env:?}"), format!("{decoded:?}"), "{}: a request changed on its way round", P::ALPN);
}

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    round_trip::<KeeperProtocol>(&payload);
    round_trip::<BrokerProtocol>(&payload);
    round_trip::<InterBrokerProtocol>(&payload);
    round_trip::<PeerProtocol>(&payload);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(ctx) = TraceContext::from_traceparent(s) {
            assert_eq!(TraceContext::from_traceparent(&ctx.to_traceparent()), Some(ctx));
        }
    }
});
