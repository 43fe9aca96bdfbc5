//! [`Peer`]: who is at each end of a connection, as handlers, logs and the
//! UCSPI variables of exec services name them.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

/// Who is at each end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A TCP connection. IPv4 clients of a dual-stack socket appear as IPv4,
    /// not as `::ffff:a.b.c.d`.
    Tcp {
        /// The server's end.
        local: SocketAddr,
        /// The client's end.
        remote: SocketAddr,
    },
    /// A Unix-domain connection.
    Unix {
        /// The path the server listens on.
        local: PathBuf,
        /// The client's effective user and group ids, where the system
        /// reports them.
        remote_ids: Option<(u32, u32)>,
    },
}

impl Peer {
    /// Both ends of a TCP connection (getsockname and getpeername).
    pub fn of_tcp(stream: &TcpStream) -> io::Result<Peer> {
        Ok(Peer::Tcp {
            local: canonical(stream.local_addr()?),
            remote: canonical(stream.peer_addr()?),
        })
    }

    /// The ends a load balancer's PROXY protocol header names.
    pub fn of_proxied(remote: SocketAddr, local: SocketAddr) -> Peer {
        Peer::Tcp {
            local: canonical(local),
            remote: canonical(remote),
        }
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
