//! The socket a pool serves, bound as its model wants it: a listening
//! socket shared by every worker, or (`reuseport`) a bound socket that
//! only holds the port, next to which each worker binds and listens on its
//! own. The master binds through here, so it need not know which model
//! wants what.

use std::io;

use super::Model;
use crate::config::Protocol;
use crate::net::Listener;
use crate::spec::PoolSpec;

/// Whether each worker of `model` binds a socket of its own beside the
/// master's: such a socket is not interchangeable with a listening one.
pub(crate) fn bound_per_worker(model: Model) -> bool {
    model == Model::Reuseport
}

/// Binds the socket of `spec`'s pool, with its backlog, file mode and
/// owner.
pub(crate) fn bind(spec: &PoolSpec<'_>) -> io::Result<Listener> {
    let s = &spec.settings;
    match s.protocol {
        Protocol::Tcp if bound_per_worker(s.model) => super::reuseport::hold_port(&spec.addr),
        Protocol::Tcp => {
            Listener::bind_with_access(&spec.addr, s.backlog, s.socket_mode, s.socket_owner)
        }
        Protocol::Udp => Listener::bind_udp(&spec.addr),
    }
}

/// Applies `spec`'s backlog and file access to a socket kept from an
/// earlier spec (listen(2) on a listening socket changes its backlog).
pub(crate) fn refresh(listener: &Listener, spec: &PoolSpec<'_>) -> io::Result<()> {
    let s = &spec.settings;
    // The master's reuseport socket only holds the port: it never listens.
    if s.protocol == Protocol::Tcp && !bound_per_worker(s.model) {
        listener.relisten(s.backlog)?;
        listener.set_file_access(s.socket_mode, s.socket_owner)?;
    }
    Ok(())
}
