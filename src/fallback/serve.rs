//! Serving a configuration with the thread pools: each service checked
//! ([`threaded`]), each address bound ([`bind`]), a [`StdPool`] started
//! on each and announced ([`start`]), and waited for.
//!
//! Compiled for Windows, and for the tests on every system; what the
//! commands call is re-exported by `crate::fallback`.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener};

use socket2::{Domain, Socket, Type};

use super::pool::StdPool;
use crate::config::{Config, Model, PoolSettings, Protocol, ServiceConfig, Sizing};
use crate::net::ListenAddr;
use crate::privileges::Privileges;
use crate::service::Service;
use crate::Error;

/// `service` as the thread pool runs it: the `pool` model with a fixed
/// number of threads (an adaptive pool's start), or why it cannot.
pub(crate) fn threaded(service: &ServiceConfig) -> Result<ServiceConfig, String> {
    let unavailable = |what: String| {
        Err(format!(
            "{what} is not available on Windows, where every service runs the pool model"
        ))
    };
    if !matches!(service.pool.model, Model::Prefork | Model::Pool) {
        return unavailable(format!("model = \"{}\"", service.pool.model));
    }
    if service.pool.protocol == Protocol::Udp {
        return unavailable("protocol = \"udp\"".into());
    }
    if let Some(unix) = service
        .listen
        .iter()
        .find(|a| matches!(a, ListenAddr::Unix(_)))
    {
        return unavailable(format!("the address {unix}"));
    }
    if service.pool.privileges != Privileges::default() {
        return unavailable(
            "user, group, chroot, limits, no_new_privs or allow_new_privileges".into(),
        );
    }
    if matches!(&service.service, Service::Exec(spec) if spec.argv0().is_some()) {
        return unavailable("argv0".into());
    }
    if service.pool.wait {
        return unavailable("wait = true".into());
    }
    if matches!(&service.service, Service::Builtin(b) if b.needs_scoreboard()) {
        return unavailable("builtin = \"metrics\"".into());
    }
    let keys = service.process_pool_keys();
    if !keys.is_empty() {
        return unavailable(keys.join(", "));
    }
    Ok(ServiceConfig {
        pool: PoolSettings {
            model: Model::Pool,
            sizing: Sizing::Fixed(service.pool.sizing.start()),
            ..service.pool.clone()
        },
        ..service.clone()
    })
}

/// A listening TCP socket on `addr` with a queue of `backlog`: `:PORT` on
/// IPv6 and IPv4 both where the system can, IPv4 only where not; an
/// explicit `[::]` IPv6 only, as on Unix. No SO_REUSEADDR: on Windows it
/// would let another program bind the same port and take connections.
pub(crate) fn bind(addr: &ListenAddr, backlog: i32) -> io::Result<TcpListener> {
    match addr {
        ListenAddr::Ip(ip) => bind_ip(*ip, ip.is_ipv6(), backlog),
        ListenAddr::AnyIp(port) => {
            let any6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, *port, 0, 0));
            match bind_ip(any6, false, backlog) {
                Err(e) if e.kind() != io::ErrorKind::AddrInUse => {
                    bind_ip(([0, 0, 0, 0], *port).into(), false, backlog)
                }
                other => other,
            }
        }
        ListenAddr::Unix(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix: addresses need Unix-domain sockets",
        )),
    }
}

fn bind_ip(addr: SocketAddr, v6_only: bool, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// The pools of a configuration, serving.
#[derive(Debug)]
pub(crate) struct Serving {
    pools: Vec<StdPool>,
}

/// Checks every service of `config`, binds every address, starts a pool on
/// each and announces it: `listening on ADDR`, followed by ` (tcp service
/// NAME)` when `with_service` (as `serve` says it on Unix). Nothing is
/// served unless everything could be set up.
pub(crate) fn start(config: &Config, with_service: bool) -> Result<Serving, Error> {
    let services = config
        .services
        .iter()
        .map(|s| threaded(s).map_err(|why| Error::Usage(format!("service {}: {why}", s.name))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bound = Vec::new();
    for service in &services {
        for addr in &service.listen {
            let listener = bind(addr, service.pool.backlog).map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
            bound.push((service, listener));
        }
    }
    let mut pools = Vec::new();
    for (service, listener) in bound {
        let pool = StdPool::start(
            &service.name,
            listener,
            service.service.clone(),
            service.pool.sizing.start(),
            service.pool.timeout,
        )
        .map_err(|source| Error::Startup {
            what: "cannot start the pool's threads",
            source,
        })?;
        let addr = pool.local_addr().map_err(|source| Error::Startup {
            what: "cannot read the bound address",
            source,
        })?;
        let note = crate::net::stack_note(pool.socket(), addr);
        let line = match with_service {
            false => format!("listening on {addr}{note}"),
            true => format!("listening on {addr}{note} (tcp service {})", service.name),
        };
        crate::log::announce(&line);
        pools.push(pool);
    }
    Ok(Serving { pools })
}

impl Serving {
    /// The addresses served, with their real ports, in the order announced.
    #[cfg(test)]
    fn addresses(&self) -> Vec<SocketAddr> {
        self.pools
            .iter()
            .filter_map(|p| p.local_addr().ok())
            .collect()
    }

    /// Waits for every pool's threads, which only [`Serving::stop`] ends:
    /// serves until the process ends.
    pub(crate) fn wait(self) {
        for pool in self.pools {
            pool.wait();
        }
    }

    /// Stops every pool (each thread finishes its connection first): for
    /// the tests, as nothing stops a Windows server but the end of its
    /// process.
    #[cfg(test)]
    fn stop(&self) {
        for pool in &self.pools {
            pool.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse("test.toml", text).unwrap()
    }

    #[test]
    fn serves_every_address_of_every_service() {
        let config = config(
            r#"
[[service]]
name = "echo"
listen = ["127.0.0.1:0", "[::1]:0"]
builtin = "echo"
workers = 2

[[service]]
name = "time"
listen = ["127.0.0.1:0"]
builtin = "time"
"#,
        );
        let serving = start(&config, true).unwrap();
        let addrs = serving.addresses();
        assert_eq!(addrs.len(), 3);
        for addr in &addrs[..2] {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"ping").unwrap();
            let mut got = [0u8; 4];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ping");
        }
        let mut time = Vec::new();
        TcpStream::connect(addrs[2])
            .unwrap()
            .read_to_end(&mut time)
            .unwrap();
        assert_eq!(time.len(), 4);
        serving.stop();
        serving.wait();
    }

    #[test]
    fn any_address_is_dual_stack() {
        let listener = bind(&ListenAddr::AnyIp(0), 16).unwrap();
        let port = listener.local_addr().unwrap().port();
        for ip in ["127.0.0.1", "[::1]"] {
            TcpStream::connect(format!("{ip}:{port}")).unwrap();
        }
    }

    const SHELL: &str = if cfg!(windows) { "cmd.exe" } else { "sh" };

    #[test]
    fn refuses_what_threads_cannot_do_in_one_line() {
        let refused = |service: &str| {
            let text = format!("[[service]]\nname = \"s\"\nlisten = [\"127.0.0.1:0\"]\n{service}");
            threaded(&config(&text).services[0]).unwrap_err()
        };
        let starts = |why: String, what: &str| {
            assert!(why.starts_with(what), "{why}");
            assert!(why.ends_with("every service runs the pool model"), "{why}");
        };
        // prefork-poll, a model every system parses (fork and the epoll
        // models are refused earlier, when the config is read, off Linux).
        starts(
            refused("builtin = \"echo\"\nmodel = \"prefork-poll\"\n"),
            "model = \"prefork-poll\" is not available on Windows",
        );
        starts(
            refused("builtin = \"echo\"\nprotocol = \"udp\"\n"),
            "protocol = \"udp\"",
        );
        starts(
            refused("builtin = \"echo\"\nlimits = { nofile = 64 }\n"),
            "user, group, chroot, limits",
        );
        starts(
            // A program the config's check finds on every system.
            refused(&format!("exec = [\"{SHELL}\"]\nargv0 = \"x\"\n")),
            "argv0 is not available",
        );
        starts(
            refused("builtin = \"echo\"\nonly_from = [\"::1\"]\nmax_requests = 9\n"),
            "max_requests, only_from",
        );
    }

    #[test]
    fn runs_prefork_and_adaptive_pools_as_fixed_thread_pools() {
        let text = "[[service]]\nname = \"s\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = { start = 3, max = 9 }\n";
        let service = threaded(&config(text).services[0]).unwrap();
        assert_eq!(service.pool.model, Model::Pool);
        assert_eq!(service.pool.sizing, Sizing::Fixed(3));
    }
}
