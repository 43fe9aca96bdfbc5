//! Exec services through pipes: where a connection cannot be a program's
//! stdin and stdout (Windows), preforkd stands between them.
//!
//! The program gets pipes for stdin and stdout, the daemon's stderr, and
//! the same environment as on Unix (the UCSPI variables: `PROTO=TCP`,
//! `TCPREMOTEIP`, `TCPREMOTEPORT`, `TCPLOCALIP`, `TCPLOCALPORT`). Two
//! threads copy, one a direction:
//!
//! - client to program, on a thread of its own: it ends at the client's
//!   end-of-file, which it passes on by closing the program's stdin, or
//!   when the program no longer reads;
//! - program to client, on the calling thread: when the program's stdout
//!   ends, the client is sent end-of-file (shutdown of the socket's write
//!   side), then the program is waited for.
//!
//! Once the program has exited, the socket is shut down both ways, which
//! ends the first thread on Linux at once. Where shutdown does not wake a
//! blocked read (Windows), that thread ends when the client closes, sends
//! more, or idles past the service's timeout; the calling thread does not
//! wait for it, so the pool thread is free for the next connection.
//!
//! Nothing here is Unix-specific: the relay is built and tested on every
//! system, though only Windows serves with it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{ChildStdin, Stdio};

use crate::net::Peer;
use crate::service::ExecSpec;

/// Runs `spec`'s program for the connection `stream` and relays between
/// them until the program has exited. A program that cannot be started is
/// an error for this connection only; one that exits non-zero is logged.
pub fn serve(spec: &ExecSpec, stream: TcpStream) -> io::Result<()> {
    let peer = Peer::of_tcp(&stream)?;
    let inbound = stream.try_clone()?;
    let mut command = spec.command(&peer);
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = command.spawn().map_err(|e| spec.cannot_run(e))?;
    let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        unreachable!("both streams were asked for as pipes");
    };
    let started = std::thread::Builder::new()
        .name("relay-in".into())
        .spawn(move || client_to_program(inbound, stdin));
    if let Err(e) = started {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let copied = pump(&mut stdout, &mut &stream);
    let _ = stream.shutdown(Shutdown::Write);
    // A program still writing (the client left) must not block on a full
    // pipe that nobody reads: closing our end makes its writes fail.
    drop(stdout);
    let status = child.wait()?;
    let _ = stream.shutdown(Shutdown::Both);
    spec.ended(&peer, status);
    copied
}

/// Copies what the client sends to the program until either stops, then
/// closes the program's stdin (dropped here): its end-of-file.
fn client_to_program(mut from: TcpStream, mut to: ChildStdin) {
    let _ = pump(&mut from, &mut to);
}

/// Copies `from` to `to` until end-of-file or an error.
///
/// A plain loop of read and write, not `io::copy`: on Linux that splices
/// between the socket and the pipe, and splice(2) holds the pipe's lock
/// while it waits for the socket, so a program that exits meanwhile hangs
/// in close(2) of the pipe (state D, in pipe_release) until the client
/// sends something or leaves.
fn pump(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}
