//! `pool` on std alone: N threads created in advance, each blocking in
//! accept on the same std `TcpListener`. What preforkd serves with where
//! there is no fork(2): Windows.
//!
//! The design is `pool`'s (UNP 30.11, "each thread calls accept"); what
//! differs is all around it. There is no master process to fork the pool,
//! watch it or restart it, no scoreboard, and no signal to stop it: a
//! thread never gives up on accept (a failure it cannot fix is logged,
//! W0011, and retried less and less often, up to once a second), a panic
//! in a handler ends that connection only, and [`StdPool::stop`] sets a
//! flag, then wakes each thread asleep in accept the only portable way, by
//! connecting to the listener.
//!
//! Builtins are served by the same code as in a worker; exec services
//! through [`relay`], pipes and two threads, since a
//! Windows socket cannot be a program's stdin and stdout.
//!
//! Nothing here is Unix- or Windows-specific, so the tests run it on Linux.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::relay;
use crate::service::Service;

/// The first pause after an accept that failed for good reason (out of
/// descriptors, say); it doubles at each failure in a row, up to the last.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LAST_PAUSE: Duration = Duration::from_secs(1);

/// A pool of threads serving one listener.
#[derive(Debug)]
pub struct StdPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// The service's name, for logs.
    name: String,
    listener: TcpListener,
    service: Service,
    /// Idle timeout of a connection.
    timeout: Option<Duration>,
    stop: AtomicBool,
}

impl StdPool {
    /// Starts `workers` threads (at least one) serving `service` on
    /// `listener`. A thread that cannot be created is logged (W0005) and
    /// the pool runs with the others; none at all is an error.
    pub fn start(
        name: &str,
        listener: TcpListener,
        service: Service,
        workers: usize,
        timeout: Option<Duration>,
    ) -> io::Result<StdPool> {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            listener,
            service,
            timeout,
            stop: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        let mut last_error = None;
        for i in 0..workers.max(1) {
            let mine = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("pool-{i}"))
                .spawn(move || mine.accept_loop(i));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    log::error!("W0005 service {name}: cannot start thread {i}: {e}");
                    last_error = Some(e);
                }
            }
        }
        match (threads.is_empty(), last_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(StdPool { shared, threads }),
        }
    }

    /// The address the pool serves, with the real port.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.listener.local_addr()
    }

    /// The listening socket, to ask its options of.
    pub fn socket(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.shared.listener)
    }

    /// Waits for every thread, and closes the listener. Only
    /// [`StdPool::stop`] ends the threads: on Windows, this is where
    /// `preforkd run` spends its life, until ctrl-c ends the process.
    pub fn wait(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }

    /// Stops the pool: each thread finishes the connection it serves, if
    /// any, and leaves instead of accepting another. Returns once they all
    /// have; [`StdPool::wait`] then closes the listener. For the tests:
    /// nothing stops a Windows server but the end of its process.
    #[cfg(test)]
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let wake = self.local_addr().map(reachable);
        // One connection wakes one thread asleep in accept. Again until
        // they have all left: a thread that was serving leaves without one,
        // and a connection may find a thread that is just leaving.
        while self.threads.iter().any(|t| !t.is_finished()) {
            if let Ok(addr) = wake {
                let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// One thread's life: accept, serve, again, until stopped.
    fn accept_loop(&self, worker: usize) {
        let mut served = 0u64;
        let mut pause = FIRST_PAUSE;
        while !self.stopping() {
            match self.listener.accept() {
                // The connection of `stop` that woke us.
                Ok(_) if self.stopping() => break,
                Ok((stream, _)) => {
                    pause = FIRST_PAUSE;
                    self.serve(stream);
                    served += 1;
                }
                // A signal, or a client that left before we took it.
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    log::warn!(
                        "W0011 service {}: accept: {}; retrying",
                        self.name,
                        crate::sys::fd::describe(&e)
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(LAST_PAUSE);
                }
            }
        }
        let worker = format!("{}/{worker}", std::process::id());
        crate::models::report_served(&self.name, &worker, served);
    }

    /// Serves one connection (timeout set, errors and panics logged).
    fn serve(&self, stream: TcpStream) {
        if self.timeout.is_some() {
            let _ = stream.set_read_timeout(self.timeout);
            let _ = stream.set_write_timeout(self.timeout);
        }
        let served = panic::catch_unwind(AssertUnwindSafe(move || match &self.service {
            Service::Builtin(builtin) => builtin.serve(&stream),
            Service::Exec(spec) => relay::serve(spec, stream),
        }));
        crate::service::outcome(&self.name, served);
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Where to connect to reach a listener: its own address, or loopback for
/// one bound to every address.
#[cfg(test)]
fn reachable(addr: SocketAddr) -> SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::service::{Builtin, ExecSpec};

    fn pool(service: Service, workers: usize) -> (StdPool, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = StdPool::start("test", listener, service, workers, None).unwrap();
        let addr = pool.local_addr().unwrap();
        (pool, addr)
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    #[test]
    fn threads_serve_connections_at_once_and_stop() {
        let (pool, addr) = pool(Service::Builtin(Builtin::Echo), 3);
        // Three clients held open together: each has a thread of its own.
        let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("client {i}\n").as_bytes()).unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let want = format!("client {i}\n");
            let mut got = vec![0u8; want.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(got, want.as_bytes());
        }
        drop(clients);
        pool.stop();
        pool.wait();
        assert!(
            TcpStream::connect(addr).is_err(),
            "the listener is closed once the pool stopped"
        );
    }

    #[test]
    fn daytime_answers_and_closes() {
        let (pool, addr) = pool(Service::Builtin(Builtin::Daytime), 1);
        let mut answer = String::new();
        connect(addr).read_to_string(&mut answer).unwrap();
        assert_eq!(answer.len(), 26, "{answer:?}");
        pool.stop();
        pool.wait();
    }

    // Unix only: it needs a program that turns its input into output,
    // and Windows has no standard one (`tr`, here). Under Wine,
    // tools/wine-test runs the same relay on Windows with a small console
    // program that copies its input (tools/wine/cat.c), and `cmd.exe /c set`
    // for the variables.
    #[cfg(unix)]
    #[test]
    fn exec_relays_both_ways_with_the_ucspi_variables() {
        let script = r#"echo "$PROTO $TCPREMOTEIP $TCPLOCALIP $TCPLOCALPORT"; tr a-z A-Z"#;
        let spec = ExecSpec::new("sh".as_ref(), vec!["-c".into(), script.into()]).unwrap();
        let (pool, addr) = pool(Service::Exec(spec), 2);
        let mut c = connect(addr);
        c.write_all(b"hello\n").unwrap();
        // End-of-file reaches the program as end-of-file on its stdin.
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        let port = addr.port();
        assert_eq!(answer, format!("TCP 127.0.0.1 127.0.0.1 {port}\nHELLO\n"));
        pool.stop();
        pool.wait();
    }

    #[test]
    fn a_program_that_exits_closes_the_connection_the_client_holds_open() {
        // A shell every system has: sh, or Windows' cmd.exe (whose echo
        // ends the line with CR LF).
        let (shell, flag) = if cfg!(windows) {
            ("cmd.exe", "/c")
        } else {
            ("sh", "-c")
        };
        let spec = ExecSpec::new(shell.as_ref(), vec![flag.into(), "echo bye".into()]).unwrap();
        let (pool, addr) = pool(Service::Exec(spec), 1);
        let mut c = connect(addr);
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert_eq!(answer.replace("\r\n", "\n"), "bye\n");
        // The one thread is free again, for the next client.
        let mut again = String::new();
        connect(addr).read_to_string(&mut again).unwrap();
        assert_eq!(again.replace("\r\n", "\n"), "bye\n");
        drop(c);
        pool.stop();
        pool.wait();
    }
}
