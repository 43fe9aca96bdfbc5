//! One datagram received on a UDP listener, as a datagram handler gets
//! it: its bytes, who sent it, and the way to answer.

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, UdpSocket};

/// A datagram a worker received, with the socket to answer it on.
///
/// Given to a [`DatagramHandler`](crate::DatagramHandler) in a worker;
/// every [`reply`](Datagram::reply) goes back to the sender from the
/// listener's address, as many as the protocol wants (none, for a
/// discard service).
///
/// ```no_run
/// fn echo(datagram: preforkd::Datagram<'_>) -> std::io::Result<()> {
///     eprintln!("{} bytes from {}", datagram.data().len(), datagram.peer_addr());
///     datagram.reply(datagram.data()).map(|_| ())
/// }
/// ```
#[derive(Debug)]
pub struct Datagram<'a> {
    data: &'a [u8],
    peer: SocketAddr,
    socket: &'a UdpSocket,
    replies: &'a Replies,
}

/// What the replies to one datagram came to, for the worker.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    /// Bytes sent back, for the pool's counters.
    pub bytes: Cell<u64>,
    /// Whether a reply could not be sent (sendto: no buffer, no route):
    /// the sender's loss, not the handler's failure.
    pub failed: Cell<bool>,
}

impl<'a> Datagram<'a> {
    /// `data` as received from `peer` on `socket`; what is sent back is
    /// told in `replies`.
    pub(crate) fn new(
        data: &'a [u8],
        peer: SocketAddr,
        socket: &'a UdpSocket,
        replies: &'a Replies,
    ) -> Datagram<'a> {
        Datagram {
            data,
            peer,
            socket,
            replies,
        }
    }

    /// The datagram's bytes (at most 65,535).
    ///
    /// ```
    /// fn upper(d: preforkd::Datagram<'_>) -> std::io::Result<()> {
    ///     d.reply(&d.data().to_ascii_uppercase()).map(|_| ())
    /// }
    /// ```
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Who sent it: where [`reply`](Datagram::reply) sends.
    ///
    /// ```
    /// fn who(d: preforkd::Datagram<'_>) -> std::io::Result<()> {
    ///     d.reply(d.peer_addr().to_string().as_bytes()).map(|_| ())
    /// }
    /// ```
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The listener's own address.
    ///
    /// ```
    /// fn where_(d: preforkd::Datagram<'_>) -> std::io::Result<()> {
    ///     let local = d.local_addr()?;
    ///     d.reply(format!("this is {local}").as_bytes()).map(|_| ())
    /// }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends `bytes` to the sender as one datagram (sendto(2)); the number
    /// of bytes sent. A datagram may get several replies, or none.
    ///
    /// ```
    /// fn twice(d: preforkd::Datagram<'_>) -> std::io::Result<()> {
    ///     d.reply(b"one")?;
    ///     d.reply(b"two").map(|_| ())
    /// }
    /// ```
    pub fn reply(&self, bytes: &[u8]) -> io::Result<usize> {
        let n = self
            .socket
            .send_to(bytes, self.peer)
            .inspect_err(|_| self.replies.failed.set(true))?;
        let r = &self.replies;
        r.bytes.set(r.bytes.get() + n as u64);
        Ok(n)
    }
}
