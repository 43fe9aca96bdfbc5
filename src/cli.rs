//! The command line: the only place flag names are spelled. See
//! preforkd(8) for the contract these implement.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::duration::parse_duration;
use crate::config::maxima::{MAX_BACKLOG, MAX_PER_SOURCE, MAX_REQUESTS, MAX_WORKERS};

fn parse_rate(s: &str) -> Result<crate::net::acl::Rate, String> {
    s.parse()
}

fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    crate::net::acl::parse_net(s)
}

/// preforkd: a pre-fork UNIX server.
#[derive(Debug, Parser)]
#[command(name = "preforkd", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve one service in the foreground, without a config file (like tcpserver).
    Run(Box<RunArgs>),
    /// Serve every service of the config file, as a daemon (or in the foreground with -f).
    Serve(ServeArgs),
    /// Check a config file: print every error with file:line:column, exit 2 if any.
    Check(ConfigArgs),
    /// Show the scoreboard of the running daemon (through its control socket).
    Status(StatusArgs),
    /// Make the running daemon reload its config (as SIGHUP does) and say how it went.
    Reload(ConfigArgs),
    /// Stop the running daemon gracefully (as SIGTERM does).
    Stop(ConfigArgs),
    /// Convert an inetd.conf to a preforkd config, printed on stdout.
    #[command(name = "import-inetd")]
    ImportInetd(ImportArgs),
    /// Run every server model against the same load and print one table (preforkd-models(7)).
    Compare(CompareArgs),
    /// Load a TCP server with short connections and report their rate and latency.
    Load(LoadArgs),
}

fn parse_models(s: &str) -> Result<crate::models::Model, String> {
    s.parse()
        .map_err(|e: crate::models::UnknownModel| e.to_string())
}

/// `preforkd compare`
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The models to run, in this order [default: all of them].
    #[arg(long, value_name = "MODEL,...", value_delimiter = ',', value_parser = parse_models)]
    pub models: Vec<crate::models::Model>,
    /// Concurrent clients; one row per count [default: 1,8,64].
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// When each measurement stops.
    #[command(flatten)]
    pub limit: LimitArgs,
    /// Rounds to measure each cell in, after a warm-up round; its figures are their median [default: 5].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50))]
    pub repeat: Option<u32>,
    /// What every model serves: echo, daytime, time, work[:bytes=N,cpu=D,sleep=D], or exec:"PROGRAM ARGS" [default: echo].
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Bytes each client sends and reads back [default: 1024; 0 for daytime and time].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub bytes: Option<u32>,
    /// Workers (processes or threads) of the models that keep a pool [default: the number of CPUs].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,
    /// A run like the book's (UNP 30.1): its designs, 15 workers, 5 clients, 4,000-byte replies from work.
    #[arg(long)]
    pub stevens: bool,
    /// Also draw the charts (cost above iterative, connections per worker, latency, conn/s), as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<std::path::PathBuf>,
    /// Also write one self-contained page with the table, the charts and the settings.
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<std::path::PathBuf>,
    /// Print the short table that fits a projector [default when the terminal is narrower than the full one].
    #[arg(long, conflicts_with = "full")]
    pub brief: bool,
    /// Print every column, however wide the terminal.
    #[arg(long)]
    pub full: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The program of an exec service, after `--`: compare -- PROGRAM ARGS.
    #[arg(last = true, value_name = "PROGRAM")]
    pub program: Vec<String>,
}

/// When a load stops: `--connections N` or `--duration D`.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct LimitArgs {
    /// Connections per run, in all [default: 2000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: Option<u64>,
    /// Or run this long ("5s").
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
}

/// `preforkd load`
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The server, an IP address and port.
    #[arg(value_name = "ADDR")]
    pub addr: std::net::SocketAddr,
    /// Concurrent clients (threads).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: u32,
    /// When each run stops.
    #[command(flatten)]
    pub limit: LimitArgs,
    /// Before the clients start, open N idle connections and hold them, sending nothing, until the end.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub hold: u32,
    /// Instead, every client makes one connection, all at the same moment.
    #[arg(long, conflicts_with_all = ["connections", "duration"])]
    pub burst: bool,
    /// Bytes each client sends and expects back (0: only read, for daytime).
    #[arg(long, value_name = "K", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub bytes: u32,
    /// Send this text instead of K bytes (expected back, unless --expect).
    #[arg(long, value_name = "TEXT", conflicts_with = "bytes")]
    pub send: Option<String>,
    /// A reply is right when it contains this text.
    #[arg(long, value_name = "TEXT")]
    pub expect: Option<String>,
    /// A reply is right when it is exactly N bytes long (the `work` builtin's answer).
    #[arg(long, value_name = "N", conflicts_with = "expect", value_parser = clap::value_parser!(u32).range(0..=67_108_864))]
    pub expect_bytes: Option<u32>,
    /// A connection's latency ends at the reply's first byte, not its end.
    #[arg(long)]
    pub first_byte: bool,
    /// How long each connect, read and write may wait.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Write every completed connection's latency in microseconds, sorted,
    /// one a line, to FILE.
    #[arg(long, value_name = "FILE")]
    pub latencies: Option<std::path::PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `preforkd import-inetd [FILE]`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The inetd.conf to read.
    #[arg(value_name = "FILE", default_value = "/etc/inetd.conf")]
    pub file: std::path::PathBuf,
}

/// `-c FILE`, for the commands that read the config.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The config file [default: /etc/preforkd/preforkd.toml; `serve` falls
    /// back to the embedded default when it does not exist].
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

/// `preforkd status [-c FILE | --control SOCKET] [--json]`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Which config (its `[daemon] control` names the socket).
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Ask the control socket at SOCKET instead of the config's: a
    /// library program's (`Server::control_socket`).
    #[arg(long, value_name = "SOCKET", conflicts_with = "config")]
    pub control: Option<std::path::PathBuf>,

    /// Print JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `preforkd serve [-c FILE] [--foreground] [--pidfile FILE] [-v]`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which config.
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Stay in the foreground (logs to stderr unless `[daemon] log` says
    /// otherwise); without it, serve detaches once it is set up.
    #[arg(short = 'f', long)]
    pub foreground: bool,

    /// Write the master's pid here, locked [default: `[daemon] pidfile`, or
    /// /run/preforkd.pid when detached].
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<std::path::PathBuf>,

    /// Log every worker exit and client disconnect (debug level).
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Log at LEVEL and above: error, warn, info or debug [default: info,
    /// or `[daemon] log_level`; debug with -v].
    #[arg(long, value_name = "LEVEL", value_parser = crate::log::parse_level,
          conflicts_with = "verbose")]
    pub log_level: Option<log::LevelFilter>,
}

/// `preforkd run ADDR (--builtin NAME | -- PROGRAM [ARGS...])`
#[derive(Debug, Args)]
#[command(
    override_usage = "preforkd run [OPTIONS] ADDR --builtin NAME\n       preforkd run [OPTIONS] ADDR -- PROGRAM [ARGS]...",
    after_help = "ADDR is IPv4:PORT, [IPv6]:PORT, :PORT (every address) or unix:/PATH; port 0 picks a free port.\n\
                  Prints `listening on ADDR` on stderr once it serves."
)]
pub struct RunArgs {
    /// Address to listen on.
    #[arg(value_name = "ADDR")]
    pub addr: String,

    /// Serving model: iterative, fork, prefork, prefork-poll, prefork-epoll,
    /// prefork-epoll-exclusive, prefork-lock, prefork-mutex, prefork-pass,
    /// threads, pool, pool-lock, pool-pass, event or reuseport (see
    /// preforkd-models(7)).
    #[arg(long, value_name = "MODEL", default_value = "prefork")]
    pub model: crate::models::Model,

    /// Read a PROXY protocol header (v1, v2 or any) from the load balancer
    /// before serving each connection.
    #[arg(long, value_name = "VERSION")]
    pub proxy_protocol: Option<crate::net::proxy::ProxyVersion>,

    /// With --proxy-protocol: a load balancer whose headers are believed
    /// (repeatable: 10.0.0.5, 10.0.0.0/24); required.
    #[arg(long, value_name = "NET", value_parser = parse_net, requires = "proxy_protocol")]
    pub trusted_proxy: Vec<ipnet::IpNet>,

    /// With --proxy-protocol: how long a balancer may take to send its
    /// header [default: 3s; at most 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "proxy_protocol")]
    pub proxy_timeout: Option<Duration>,

    /// Serve a built-in service: echo, discard, daytime, chargen, time or
    /// work[:cpu=DURATION,sleep=DURATION,max=SIZE].
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present = "program",
        conflicts_with = "program"
    )]
    pub builtin: Option<String>,

    /// Workers to pre-fork: a fixed pool of N, or the start of an adaptive
    /// pool with --min-spare, --max-spare or --max-workers [default: the
    /// adaptive pool, from one worker per CPU up to 256].
    #[arg(short = 'w', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS as i64))]
    pub workers: Option<u32>,

    /// Adaptive pool: idle workers to keep ready [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=MAX_WORKERS as i64))]
    pub min_spare: Option<u32>,

    /// Adaptive pool: idle workers above which extras are retired [default: 4 per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=MAX_WORKERS as i64))]
    pub max_spare: Option<u32>,

    /// Adaptive pool: the most workers [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS as i64))]
    pub max_workers: Option<u32>,

    /// Retire a worker after about this many connections.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    pub max_requests: Option<u64>,

    /// Add up to this many, at random per worker, to --max-requests [default: a tenth of it].
    #[arg(long, value_name = "N", requires = "max_requests",
          value_parser = clap::value_parser!(u64).range(0..=MAX_REQUESTS))]
    pub max_requests_jitter: Option<u64>,

    /// Close a connection idle this long; stop a handler busy this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Retire a worker whose resident memory grew past this size (4096, 512K, 64M, 1G).
    #[arg(long, value_name = "SIZE", value_parser = crate::config::size::parse_size)]
    pub max_memory: Option<u64>,

    /// At most this many concurrent connections from one address.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_PER_SOURCE as i64))]
    pub per_source: Option<u32>,

    /// At most this many new connections per second or minute (50/s, 600/m).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<crate::net::acl::Rate>,

    /// Accept clients from this network only (repeatable: 10.0.0.0/8, ::1).
    #[arg(long, value_name = "NET", value_parser = parse_net)]
    pub only_from: Vec<ipnet::IpNet>,

    /// Never accept clients from this network (repeatable).
    #[arg(long, value_name = "NET", value_parser = parse_net)]
    pub no_access: Vec<ipnet::IpNet>,

    /// Log one line per connection: client, worker, duration, bytes, result.
    #[arg(long)]
    pub log_connections: bool,

    /// Serve over UDP instead of TCP: a builtin answers each datagram; a
    /// program gets the socket itself and reads the datagrams (inetd's
    /// `dgram udp wait`).
    #[arg(long)]
    pub udp: bool,

    /// Give the program the listening socket itself, one program at a
    /// time, which accepts connections on its stdin (inetd's `stream tcp
    /// wait`); implied by --udp with a program.
    #[arg(long, requires = "program")]
    pub wait: bool,

    /// Workers drop to this user after the master binds (needs root).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// ...and to this group instead of the user's own.
    #[arg(long, value_name = "GROUP", requires = "user")]
    pub group: Option<String>,

    /// Pass this variable of preforkd's environment to the program
    /// (repeatable); it gets no other but PATH and the UCSPI ones.
    #[arg(long, value_name = "NAME")]
    pub pass_env: Vec<String>,

    /// Length of the listen queue (capped by net.core.somaxconn).
    #[arg(long, value_name = "N", default_value_t = crate::net::DEFAULT_BACKLOG,
          value_parser = clap::value_parser!(i32).range(1..=MAX_BACKLOG as i64))]
    pub backlog: i32,

    /// On SIGTERM, how long busy workers may take to finish before they are killed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub graceful_timeout: Duration,

    /// Log every worker exit and client disconnect (debug level).
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Log at LEVEL and above: error, warn, info or debug [default: info;
    /// debug with -v].
    #[arg(long, value_name = "LEVEL", value_parser = crate::log::parse_level,
          conflicts_with = "verbose")]
    pub log_level: Option<log::LevelFilter>,

    /// The program to run for each connection, with its arguments, after `--`.
    #[arg(last = true, value_name = "PROGRAM")]
    pub program: Vec<OsString>,
}
