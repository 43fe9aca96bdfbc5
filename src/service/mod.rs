//! What a worker does with a connection: the `Handler` trait, and the two
//! kinds of service the daemon offers, built-in and exec.
//!
//! A handler runs in a worker process, one connection at a time; it does
//! not accept, fork workers or supervise. Library users implement
//! `Handler` (or pass a closure) to serve their own protocol, and
//! `DatagramHandler` for their own over UDP. (`Handler`
//! is Unix only, as the workers are; on Windows the thread pool serves a
//! [`Service`] itself, an exec service through the fallback's relay.)

pub mod builtin;
pub mod exec;
#[cfg(unix)]
pub mod stderr;

use std::fmt;
use std::io;

pub use builtin::Builtin;
pub use exec::ExecSpec;

#[cfg(unix)]
use crate::net::{Connection, Datagram};

/// Serves one accepted connection.
///
/// Runs in a pre-forked worker process. The connection is closed when the
/// handler returns or drops it. Returning an error only logs it (at debug
/// level for a client that went away, warning otherwise); the worker goes
/// back to accept either way, and so it does after a panic.
///
/// ```no_run
/// use std::io::Write;
/// use preforkd::{Connection, Handler};
///
/// /// Greets each client by its address.
/// struct Greeter;
///
/// impl Handler for Greeter {
///     fn handle(&self, mut conn: Connection) -> std::io::Result<()> {
///         let who = conn.remote_addr().map(|a| a.to_string()).unwrap_or_default();
///         writeln!(conn, "hello {who}")
///     }
/// }
///
/// # fn main() -> Result<(), preforkd::Error> {
/// preforkd::Server::bind("127.0.0.1:8080")?.serve(Greeter)
/// # }
/// ```
#[cfg(unix)]
pub trait Handler {
    /// Serve `conn` until done.
    fn handle(&self, conn: Connection) -> io::Result<()>;
}

#[cfg(unix)]
impl<F> Handler for F
where
    F: Fn(Connection) -> io::Result<()>,
{
    fn handle(&self, conn: Connection) -> io::Result<()> {
        self(conn)
    }
}

/// Answers one datagram received on a UDP listener.
///
/// Runs in a pre-forked worker process, one datagram at a time, as the
/// daemon's UDP builtins (echo, daytime, ...) do: the worker blocks in
/// recvfrom(2), applies the pool's access rules, and gives the handler
/// each datagram it admits, with the sender's address and a way to
/// [`reply`](Datagram::reply). Returning an error only logs it (W0013),
/// and so does a panic (W0014); the worker goes on to the next datagram.
///
/// ```no_run
/// use preforkd::{Datagram, DatagramHandler};
///
/// /// Answers each datagram with its length.
/// struct Length;
///
/// impl DatagramHandler for Length {
///     fn handle(&self, datagram: Datagram<'_>) -> std::io::Result<()> {
///         let len = datagram.data().len().to_string();
///         datagram.reply(len.as_bytes()).map(|_| ())
///     }
/// }
/// ```
#[cfg(unix)]
pub trait DatagramHandler {
    /// Answer `datagram`, or not.
    fn handle(&self, datagram: Datagram<'_>) -> io::Result<()>;
}

#[cfg(unix)]
impl<F> DatagramHandler for F
where
    F: Fn(Datagram<'_>) -> io::Result<()>,
{
    fn handle(&self, datagram: Datagram<'_>) -> io::Result<()> {
        self(datagram)
    }
}

/// A service of the daemon: a built-in protocol or an external program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// One of the RFC 862–868 services.
    Builtin(Builtin),
    /// A program run with the connection on stdin and stdout.
    Exec(ExecSpec),
}

#[cfg(unix)]
impl Service {
    /// Serves `conn`; for a program, says how it ended (the worker logs it
    /// with the connection: no state is kept between connections).
    pub fn serve(&self, conn: Connection) -> io::Result<Option<std::process::ExitStatus>> {
        match self {
            Service::Builtin(b) => b.handle(conn).map(|()| None),
            Service::Exec(e) => e.run(conn).map(Some),
        }
    }
}

#[cfg(unix)]
impl Handler for Service {
    fn handle(&self, conn: Connection) -> io::Result<()> {
        self.serve(conn).map(|_| ())
    }
}

impl fmt::Display for Service {
    /// The name logs use: the builtin's name or the program's file name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Builtin(b) => write!(f, "{b}"),
            Service::Exec(e) => write!(f, "{}", e.name()),
        }
    }
}

/// Serves one connection with `serve` (a handler's, or a service's that
/// also says how its program ended): what became of it, with errors and
/// panics logged.
#[cfg(unix)]
pub(crate) fn serve_one(
    name: &str,
    serve: impl FnOnce() -> io::Result<Option<std::process::ExitStatus>>,
) -> Served {
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(serve));
    let program = match &served {
        Ok(Ok(status)) => *status,
        _ => None,
    };
    Served {
        failure: outcome(name, served.map(|r| r.map(|_| ()))),
        program,
    }
}

/// What became of one connection.
#[cfg(unix)]
#[derive(Debug, Default)]
pub(crate) struct Served {
    /// Why it failed, if it did (a client that went away or idled out did
    /// not fail).
    pub failure: Option<String>,
    /// How its program ended, for an exec service.
    pub program: Option<std::process::ExitStatus>,
}

/// What became of one connection, logged: `None` when it went well (a
/// client that went away or idled out is not a failure), else why not.
/// `served` is what the handler returned, or the panic it raised.
pub(crate) fn outcome(
    service: &str,
    served: std::thread::Result<io::Result<()>>,
) -> Option<String> {
    match served {
        Ok(Ok(())) => None,
        Ok(Err(e)) if builtin::client_went_away(&e) => {
            log::debug!("service {}: client went away: {}", service, e);
            None
        }
        Ok(Err(e))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            log::debug!(
                "service {}: connection idle past the timeout: closed",
                service
            );
            None
        }
        Ok(Err(e)) => {
            log::warn!("W0013 service {}: {}", service, e);
            Some(e.to_string())
        }
        Err(_) => {
            log::error!(
                "W0014 service {}: the handler panicked; connection closed",
                service
            );
            Some("the handler panicked".into())
        }
    }
}
