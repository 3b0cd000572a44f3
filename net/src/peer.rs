//! [`Peer`]: who is at the other end of a server's connection, as its certificate proved it.
//! Handlers get it with every request; traces name it.

use std::net::SocketAddr;

use crate::tls::Principal;

/// The client at the other end of a connection, as its certificate proved it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Who it is.
    pub principal: Principal,
    /// Where it connects from.
    pub remote: SocketAddr,
    /// Stable id of the connection (for logs and for telling connections apart).
    pub connection_id: usize,
}
