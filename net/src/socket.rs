//! UDP sockets for QUIC endpoints, with buffers large enough for the traffic.
//!
//! The kernel's default UDP receive buffer (about 208 KiB on Linux) overflows at a few hundred
//! MB/s; every datagram dropped there looks like congestion to QUIC and halves its sending
//! rate. Endpoints therefore open their sockets here and ask for `udp_buffer` bytes each way
//! (the kernel may grant less: `net.core.rmem_max` caps it unless we may force it).

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::tls::TransportOptions;

/// Opens a QUIC endpoint on `addr`: a server when `server` is given (with the key its
/// stateless resets are signed with), else a client.
pub(crate) fn endpoint(
    addr: SocketAddr,
    server: Option<(quinn::ServerConfig, crate::tls::ResetKeys)>,
    opts: &TransportOptions,
) -> std::io::Result<quinn::Endpoint> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Only the family asked for: clients keep one endpoint per family.
        let _ = socket.set_only_v6(true);
    }
    // Best effort: a smaller buffer still works, only slower under load.
    let _ = socket.set_recv_buffer_size(opts.udp_buffer);
    let _ = socket.set_send_buffer_size(opts.udp_buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime found"))?;
    let (config, server) = match server {
        Some((server, keys)) => {
            let mut config = quinn::EndpointConfig::new(std::sync::Arc::new(keys.token));
            let cid_key = keys.cid;
            config
                .cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
            (config, Some(server))
        }
        None => (quinn::EndpointConfig::default(), None),
    };
    // What this endpoint accepts, and tells its peers (quinn's default is 1,472): a peer's
    // path-MTU discovery never tries more than this.
    let mut config = config;
    let accept = opts.max_udp_payload.clamp(1_472, crate::tls::MAX_UDP_PAYLOAD);
    config
        .max_udp_payload_size(accept)
        .map_err(|e| std::io::Error::other(format!("UDP payload size {accept}: {e}")))?;
    quinn::Endpoint::new(config, server, socket.into(), runtime)
}
