//! Arbitrary bytes as a frame's payload on each of Sluice's own QUIC protocols (the keeper's
//! client protocol, the brokers' client and inter-broker protocols, the keeper members' peer
//! protocol): the envelope (version, correlation id, trace context) with a request in it (as
//! a server reads it) and with a reply, push or error in it (as a client reads it); as the
//! hello and its answer, the first frames of every connection; and as a `traceparent`
//! header value.
//!
//! Never panics. What decodes encodes again, and that decodes to the same message: a server
//! never answers a request it read differently from how it would write it, nor a client a
//! reply.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use sluice_net::frame::{self, TraceContext};
use sluice_net::protocol::ServerBody;
use sluice_net::Protocol;
use sluice_proto::broker::BrokerProtocol;
use sluice_proto::interbroker::InterBrokerProtocol;
use sluice_proto::keeper::KeeperProtocol;
use sluice_proto::peer::PeerProtocol;

fn round_trip<P: Protocol>(payload: &Bytes) {
    body_round_trip::<P::Request>(payload, P::ALPN, "request");
    body_round_trip::<ServerBody<P::Response, P::Push>>(payload, P::ALPN, "reply");
}

fn body_round_trip<B: Serialize + DeserializeOwned + std::fmt::Debug>(payload: &Bytes, alpn: &str, what: &str) {
    let Ok(env) = frame::decode::<B>(payload) else { return };
    let again = frame::encode(&env, u32::MAX).unwrap_or_else(|e| panic!("{alpn}: a decoded {what} does not encode: {e}"));
    let bytes = Bytes::from(again.to_vec());
    // The encoded frame starts with its 4-byte length.
    let decoded = frame::decode::<B>(&bytes.slice(4..)).expect("what was encoded decodes");
    assert_eq!(format!("{env:?}"), format!("{decoded:?}"), "{alpn}: a {what} changed on its way round");
}

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    round_trip::<KeeperProtocol>(&payload);
    round_trip::<BrokerProtocol>(&payload);
    round_trip::<InterBrokerProtocol>(&payload);
    round_trip::<PeerProtocol>(&payload);
    if let Err(e) = sluice_net::protocol::hello_round_trip(&payload) {
        panic!("a hello changed on its way round: {e}");
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(ctx) = TraceContext::from_traceparent(s) {
            assert_eq!(TraceContext::from_traceparent(&ctx.to_traceparent()), Some(ctx));
        }
    }
});
