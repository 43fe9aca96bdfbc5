//! What each subcommand does, from parsed arguments to a result: `run`
//! (one service from the command line), `serve` (the config file) and
//! `check` (validate it). Printing the final error and choosing the exit
//! status is `main`'s job.
//!
//! Reading the command line and the config is the same everywhere, and is
//! here. Serving is not: `unix` runs the master and its forked workers,
//! and talks to a running daemon; `windows` runs the thread pool of
//! `crate::fallback`, and says what it cannot do.

#[cfg(unix)]
mod compare;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
use windows as platform;

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, ConfigArgs, ImportArgs, RunArgs};
use crate::config::{
    self, Config, ConfigError, DaemonConfig, PoolSettings, Protocol, ServiceConfig, Sizing,
};
use crate::error::Error;
use crate::net::acl::Access;
use crate::net::proxy;
use crate::privileges::{Account, Privileges};
use crate::service::{ExecSpec, Service};
use crate::{default_workers, ListenAddr};

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run(args) => {
            init_log(args.verbose, args.log_level);
            platform::run(run_config(&args)?)
        }
        Command::Serve(args) => platform::serve(args),
        Command::Check(args) => check(args),
        Command::ImportInetd(args) => import_inetd(args),
        Command::Status(args) => {
            let request = if args.json { "status json" } else { "status" };
            match &args.control {
                Some(path) => platform::control_at(path, request),
                None => platform::control(&args.config, request),
            }
        }
        Command::Reload(args) => platform::control(&args, "reload"),
        Command::Stop(args) => platform::control(&args, "stop"),
        Command::Compare(args) => platform::compare(args),
        Command::Load(args) => load(args),
    }
}

impl crate::cli::LimitArgs {
    fn limit(&self) -> crate::load::Limit {
        match (self.connections, self.duration) {
            (_, Some(d)) => crate::load::Limit::Duration(d),
            (n, None) => crate::load::Limit::Connections(n.unwrap_or(2000)),
        }
    }
}

fn load(args: crate::cli::LoadArgs) -> Result<(), Error> {
    use crate::load::{LoadSpec, Reply, Schedule, Until};
    if args.timeout.is_zero() {
        return Err(Error::Usage("--timeout must be more than 0".into()));
    }
    let schedule = if args.burst {
        Schedule::Burst
    } else {
        Schedule::Repeat(args.limit.limit())
    };
    let mut spec = LoadSpec::echo(
        args.addr,
        args.clients as usize,
        schedule,
        args.bytes as usize,
    );
    if let Some(text) = args.send {
        spec.request = text.into_bytes();
    }
    if let Some(text) = args.expect {
        spec.reply = Reply::Contains(text.into_bytes());
    }
    if let Some(n) = args.expect_bytes {
        spec.reply = Reply::Length(n as usize);
    }
    if args.first_byte {
        spec.until = Until::FirstByte;
    }
    spec.timeout = args.timeout;
    spec.hold = args.hold as usize;
    let result = crate::load::run(&spec);
    if args.json {
        println!("{}", serde_json::to_string(&result).unwrap_or_default());
    } else {
        println!("{result}");
    }
    if let Some(path) = &args.latencies {
        let text: String = result
            .latencies_us
            .iter()
            .map(|t| format!("{t}\n"))
            .collect();
        std::fs::write(path, text)
            .map_err(|e| Error::Failed(format!("cannot write {}: {e}", path.display())))?;
    }
    if result.failed > 0 {
        return Err(Error::Failed(format!(
            "{} connections failed",
            result.failed
        )));
    }
    Ok(())
}

fn import_inetd(args: ImportArgs) -> Result<(), Error> {
    let text = std::fs::read_to_string(&args.file).map_err(|source| {
        Error::Config(ConfigError::Read {
            path: args.file.clone(),
            source,
        })
    })?;
    let imported = config::inetd::import(
        &args.file.display().to_string(),
        &text,
        &config::inetd::Services::system(),
    );
    print!("{}", imported.toml);
    for line in &imported.skipped {
        eprintln!("{line}");
    }
    eprintln!(
        "import-inetd: {} imported, {} not imported",
        services(imported.imported),
        services(imported.skipped.len())
    );
    if imported.imported == 0 && !imported.skipped.is_empty() {
        return Err(Error::Failed(format!(
            "import-inetd: nothing in {} could be imported",
            args.file.display()
        )));
    }
    Ok(())
}

/// "1 service", "3 services".
fn services(n: usize) -> String {
    if n == 1 {
        "1 service".to_string()
    } else {
        format!("{n} services")
    }
}

/// Logs to stderr at `--log-level`, or debug with `-v` (clap lets only
/// one be given), or info; `[daemon] log_level` may set it once read.
fn init_log(verbose: bool, level: Option<log::LevelFilter>) {
    crate::log::init_stderr(level.unwrap_or(if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    }));
}

/// The config of `run`: one service, from the command line.
fn run_config(args: &RunArgs) -> Result<Config, Error> {
    let addr: ListenAddr = args.addr.parse().map_err(Error::Address)?;
    let service = match (&args.builtin, args.program.split_first()) {
        (Some(_), _) if !args.pass_env.is_empty() => {
            return Err(Error::Usage(
                "--pass-env is for programs (-- PROGRAM), not builtins".into(),
            ))
        }
        (Some(name), _) => Service::Builtin(name.parse().map_err(Error::UnknownBuiltin)?),
        (None, Some((program, rest))) => {
            for name in &args.pass_env {
                ExecSpec::check_pass_env(name)
                    .map_err(|e| Error::Usage(e.replace("pass_env", "--pass-env")))?;
            }
            let spec = ExecSpec::new(program.as_ref(), rest.to_vec()).map_err(Error::Program)?;
            let spec = spec.with_pass_env(args.pass_env.iter().map(String::as_str));
            spec.check().map_err(Error::Program)?;
            Service::Exec(spec)
        }
        (None, None) => {
            return Err(Error::Usage(
                "run needs --builtin NAME or -- PROGRAM [ARGS...]".into(),
            ))
        }
    };
    let protocol = if args.udp {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    // A program on UDP reads its datagrams itself: a wait service.
    let wait = args.wait || (args.udp && matches!(service, Service::Exec(_)));
    if args.timeout.is_some_and(|t| t.is_zero()) {
        return Err(Error::Usage("--timeout must be longer than 0s".into()));
    }
    if args.max_memory == Some(0) {
        return Err(Error::Usage("--max-memory must be larger than 0".into()));
    }
    if protocol == Protocol::Udp && matches!(addr, ListenAddr::Unix(_)) {
        return Err(Error::Usage("--udp needs an IP address, not unix:".into()));
    }
    // run has no --socket-mode: the socket file's mode would be the
    // umask's, which may let anyone connect and name any client.
    if args.proxy_protocol.is_some() && matches!(addr, ListenAddr::Unix(_)) {
        return Err(Error::Usage(
            "--proxy-protocol needs an IP address: on a unix: socket every client's header is believed; use serve, with socket_mode".into(),
        ));
    }
    if protocol == Protocol::Udp && !wait {
        let tcp_only = [
            ("--timeout", args.timeout.is_some()),
            ("--max-memory", args.max_memory.is_some()),
            ("--log-connections", args.log_connections),
        ];
        if let Some((flag, _)) = tcp_only.iter().find(|(_, given)| *given) {
            return Err(Error::Usage(format!(
                "{flag} applies to tcp services and programs, not a builtin on --udp"
            )));
        }
    }
    let account = match &args.user {
        Some(user) => Some(Account::lookup(user, args.group.as_deref()).map_err(Error::Usage)?),
        None => None,
    };
    let proxy_protocol = match args.proxy_protocol {
        None => None,
        Some(_) if args.trusted_proxy.is_empty() => {
            return Err(Error::Usage(
                "--proxy-protocol needs --trusted-proxy NET: the load balancers whose headers are believed".into(),
            ))
        }
        Some(version) => {
            let timeout = args.proxy_timeout.unwrap_or(proxy::DEFAULT_TIMEOUT);
            if timeout.is_zero() || timeout > proxy::MAX_TIMEOUT {
                return Err(Error::Usage(format!(
                    "--proxy-timeout must be longer than 0s and at most {}s",
                    proxy::MAX_TIMEOUT.as_secs()
                )));
            }
            Some(proxy::Proxy {
                version,
                trusted: args.trusted_proxy.clone(),
                timeout,
            })
        }
    };
    let service_config = ServiceConfig {
        name: service.to_string(),
        listen: vec![addr],
        service,
        pool: PoolSettings {
            protocol,
            sizing: run_sizing(args, wait)?,
            max_requests: args.max_requests,
            max_requests_jitter: args
                .max_requests_jitter
                .unwrap_or(args.max_requests.unwrap_or(0) / 10),
            timeout: args.timeout,
            max_memory: args.max_memory,
            log_connections: args.log_connections,
            access: Access {
                only_from: args.only_from.clone(),
                no_access: args.no_access.clone(),
                per_source: args.per_source,
                rate: args.rate,
            },
            backlog: args.backlog,
            privileges: Privileges {
                account,
                ..Privileges::default()
            },
            socket_mode: None,
            socket_owner: None,
            model: args.model,
            proxy_protocol,
            wait,
        },
    };
    service_config.check_protocol().map_err(Error::Usage)?;
    service_config
        .check_model()
        .map_err(|why| Error::Usage(why.replace("model = ", "--model ")))?;
    service_config
        .check_wait()
        .map_err(|why| Error::Usage(run_words(&why)))?;
    Ok(Config {
        file: "(command line)".into(),
        daemon: DaemonConfig {
            graceful_timeout: args.graceful_timeout,
            control: PathBuf::new(),
            pidfile: None,
            log: None,
            log_level: None,
            syslog_facility: 3,
            syslog_socket: PathBuf::new(),
        },
        services: vec![service_config],
    })
}

/// A fixed pool of --workers alone; an adaptive one when a spare or
/// maximum is given (the config file's defaults fill in the rest), and
/// without any of them the adaptive default of a config service without
/// `workers` (a single-process model gets a fixed count, as there): a
/// fixed pool of one worker per CPU is locked by as many idle clients.
fn run_sizing(args: &RunArgs, wait: bool) -> Result<Sizing, Error> {
    let workers = args.workers.map(|n| n as usize);
    if args.min_spare.is_none() && args.max_spare.is_none() && args.max_workers.is_none() {
        return Ok(match workers {
            Some(n) => Sizing::Fixed(n),
            None if wait => Sizing::Fixed(1),
            None if args.model.is_process_pool() => Sizing::default_adaptive(),
            None => Sizing::Fixed(default_workers()),
        });
    }
    let max = args.max_workers.map(|n| n as usize);
    // --workers is the start; the default start is clamped to --max-workers.
    let start = workers.map(|w| max.map_or(w, |m| w.min(m)));
    Sizing::adaptive(
        start,
        args.min_spare.map(|n| n as usize),
        args.max_spare.map(|n| n as usize),
        max,
    )
    .map_err(|e| Error::Usage(format!("invalid pool: {e}")))
}

/// A config check's words as `run`'s flags say them: `model = "x"` is
/// `--model "x"`, `max_requests` is `--max-requests`.
fn run_words(why: &str) -> String {
    let mut words = why.replace("model = ", "--model ");
    for key in [
        "max_requests",
        "max_memory",
        "per_source",
        "rate",
        "only_from",
        "no_access",
        "proxy_protocol",
        "workers",
    ] {
        words = words.replace(key, &format!("--{}", key.replace('_', "-")));
    }
    words
}

/// Where the configuration comes from.
#[derive(Debug, Clone)]
enum Source {
    /// A file named with -c: it must exist.
    File(PathBuf),
    /// No -c: the default path if it exists, else the embedded default.
    Default,
}

impl Source {
    fn of(args: &ConfigArgs) -> Source {
        args.config.clone().map_or(Source::Default, Source::File)
    }

    /// No file given and none at the default path.
    fn is_embedded(&self) -> bool {
        matches!(self, Source::Default) && !Path::new(config::DEFAULT_PATH).exists()
    }

    /// The config `serve` runs, saying so when it is the embedded default.
    fn load_to_serve(&self) -> Result<Config, Error> {
        if self.is_embedded() {
            log::info!(
                "M0020 no -c given and no {}: serving the embedded default (the builtins on 127.0.0.1:70xx)",
                config::DEFAULT_PATH
            );
        }
        self.load().map_err(Error::Config)
    }

    fn load(&self) -> Result<Config, ConfigError> {
        match self {
            Source::File(path) => config::load(path),
            Source::Default if Path::new(config::DEFAULT_PATH).exists() => {
                config::load(Path::new(config::DEFAULT_PATH))
            }
            Source::Default => config::parse(config::EMBEDDED_NAME, config::EMBEDDED_DEFAULT)
                .map_err(ConfigError::Invalid),
        }
    }
}

fn check(args: ConfigArgs) -> Result<(), Error> {
    let source = Source::of(&args);
    if source.is_embedded() {
        eprintln!(
            "preforkd: no -c given and no {}: checking the embedded default",
            config::DEFAULT_PATH
        );
    }
    let config = source.load().map_err(Error::Config)?;
    let addresses: usize = config.services.iter().map(|s| s.listen.len()).sum();
    println!(
        "{}: ok: {} on {}",
        config.file,
        plural(config.services.len(), "service"),
        plural(addresses, "address")
    );
    Ok(())
}

/// "1 service", "2 services", "1 address", "3 addresses".
fn plural(n: usize, word: &str) -> String {
    let suffix = match (n, word.ends_with('s')) {
        (1, _) => "",
        (_, true) => "es",
        (_, false) => "s",
    };
    format!("{n} {word}{suffix}")
}
