//! What each subcommand does, from parsed arguments to a result: `run`
//! (one service from the command line), `serve` (the config file) and
//! `check` (validate it). Printing the final error and choosing the exit
//! status is `main`'s job.

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, ConfigArgs, ImportArgs, RunArgs, ServeArgs};
use crate::config::{
    self, Config, ConfigError, DaemonConfig, LogTarget, Protocol, ServiceConfig, Sizing,
};
use crate::error::Error;
use crate::master::plan::Plan;
use crate::master::{Announce, Ended, Master};
use crate::net::acl::Access;
use crate::privileges::{Account, Privileges};
use crate::service::{Builtin, ExecSpec, Service};
use crate::sys::daemon::{Pidfile, PidfileError};
use crate::{default_workers, ListenAddr};
use std::io::{Read, Write};

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run(args) => run_one(*args),
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::ImportInetd(args) => import_inetd(args),
        Command::Status(args) => {
            let request = if args.json { "status json" } else { "status" };
            control(&args.config, request)
        }
        Command::Reload(args) => control(&args, "reload"),
        Command::Stop(args) => control(&args, "stop"),
        Command::Compare(args) => compare(args),
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
    let result = crate::load::run(&crate::load::LoadSpec {
        addr: args.addr,
        clients: args.clients as usize,
        limit: args.limit.limit(),
        bytes: args.bytes as usize,
    });
    if args.json {
        println!("{}", serde_json::to_string(&result).unwrap_or_default());
    } else {
        println!("{result}");
    }
    if result.failed > 0 {
        return Err(Error::Failed(format!(
            "{} connections failed",
            result.failed
        )));
    }
    Ok(())
}

fn compare(args: crate::cli::CompareArgs) -> Result<(), Error> {
    use crate::compare::{CompareSpec, Progress, Target};
    let target = match args.service.strip_prefix("exec:") {
        Some(program) => {
            let argv: Vec<String> = program.split_whitespace().map(str::to_string).collect();
            if argv.is_empty() {
                return Err(Error::Usage("--service exec: needs a program".into()));
            }
            ExecSpec::new(Path::new(&argv[0]), Vec::new()).map_err(Error::Program)?;
            Target::Exec(argv)
        }
        None => match args.service.parse().map_err(Error::UnknownBuiltin)? {
            Builtin::Echo | Builtin::Daytime | Builtin::Time => Target::Builtin(args.service.clone()),
            Builtin::Discard | Builtin::Chargen => {
                return Err(Error::Usage(format!(
                    "--service {}: compare measures services that answer and close: echo, daytime, time or exec:PROGRAM",
                    args.service
                )))
            }
        },
    };
    // daytime and time answer without being asked: nothing to send.
    let bytes = match (&target, args.bytes) {
        (Target::Builtin(name), None) if name != "echo" => 0,
        (Target::Builtin(name), Some(k)) if name != "echo" && k > 0 => {
            return Err(Error::Usage(format!(
                "--service {name} reads nothing: use --bytes 0 or leave it out"
            )))
        }
        (_, k) => k.unwrap_or(1024) as usize,
    };
    let models = if args.models.is_empty() {
        crate::models::MODELS.iter().map(|(m, _)| *m).collect()
    } else {
        args.models.clone()
    };
    if args.clients.iter().any(|&c| c == 0 || c > 4096) {
        return Err(Error::Usage(
            "--clients: each count must be from 1 to 4096".into(),
        ));
    }
    let spec = CompareSpec {
        models,
        clients: args.clients.clone(),
        limit: args.limit.limit(),
        target,
        bytes,
        workers: args.workers.map_or_else(default_workers, |n| n as usize),
    };
    let rows_total = (spec.models.len() * spec.clients.len()) as u64;
    let bar = indicatif::ProgressBar::new(rows_total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut unmeasured = 0;
    let rows = crate::compare::run(&spec, |step| match step {
        Progress::Starting(what) => bar.set_message(what.to_string()),
        Progress::Failed(why) => {
            unmeasured += 1;
            bar.suspend(|| eprintln!("preforkd: {why}"));
        }
        Progress::Done => bar.inc(1),
    });
    bar.finish_and_clear();
    let rows = rows.map_err(Error::Failed)?;
    if let Some(path) = &args.chart {
        crate::compare::chart::write(path, &rows).map_err(Error::Failed)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        print!("{}", crate::compare::table(&rows));
    }
    let failed: u64 = rows.iter().map(|r| r.failed).sum();
    match (unmeasured, failed) {
        (0, 0) => Ok(()),
        (0, failed) => Err(Error::Failed(format!("{failed} connections failed"))),
        (n, _) => Err(Error::Failed(format!(
            "{n} of the runs could not be measured"
        ))),
    }
}

/// Sends `request` to the control socket of the daemon that `args`'
/// config describes, and prints the answer.
///
/// `reload` checks the file first and does not ask the daemon to reload a
/// file with errors (they are printed, exit 2). `status` and `stop` need only
/// the socket's path, so they work while the file is being edited.
fn control(args: &ConfigArgs, request: &str) -> Result<(), Error> {
    let source = Source::of(args);
    let path = match source.load() {
        Ok(config) => config.daemon.control,
        Err(e) if request == "reload" => return Err(Error::Config(e)),
        Err(_) => source.control_path_only(),
    };
    let failed = |source| Error::Control {
        path: path.clone(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(failed)?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(failed)?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(failed)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(failed)?;
    match answer.strip_prefix("error: ") {
        Some(why) => Err(Error::Refused(why.trim_end().to_string())),
        None => {
            print!("{answer}");
            Ok(())
        }
    }
}

fn import_inetd(args: ImportArgs) -> Result<(), Error> {
    let text = std::fs::read_to_string(&args.file).map_err(|source| {
        Error::Config(ConfigError::Read {
            path: args.file.clone(),
            source,
        })
    })?;
    let toml = config::inetd::import(
        &args.file.display().to_string(),
        &text,
        &config::inetd::Services::system(),
    );
    print!("{toml}");
    Ok(())
}

fn init_log(verbose: bool) {
    crate::log::init_stderr(if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
}

fn run_one(args: RunArgs) -> Result<(), Error> {
    init_log(args.verbose);
    let addr: ListenAddr = args.addr.parse().map_err(Error::Address)?;
    let service = match (&args.builtin, args.program.split_first()) {
        (Some(name), _) => Service::Builtin(name.parse().map_err(Error::UnknownBuiltin)?),
        (None, Some((program, rest))) => {
            Service::Exec(ExecSpec::new(program.as_ref(), rest.to_vec()).map_err(Error::Program)?)
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
    if args.udp && matches!(service, Service::Exec(_)) {
        return Err(Error::Usage(
            "--udp serves builtins only, not programs".into(),
        ));
    }
    if args.timeout.is_some_and(|t| t.is_zero()) {
        return Err(Error::Usage("--timeout must be longer than 0s".into()));
    }
    if args.max_memory == Some(0) {
        return Err(Error::Usage("--max-memory must be larger than 0".into()));
    }
    if protocol == Protocol::Udp && matches!(addr, ListenAddr::Unix(_)) {
        return Err(Error::Usage("--udp needs an IP address, not unix:".into()));
    }
    let account = match &args.user {
        Some(user) => Some(Account::lookup(user, args.group.as_deref()).map_err(Error::Usage)?),
        None => None,
    };
    let service_config = ServiceConfig {
        name: service.to_string(),
        listen: vec![addr],
        protocol,
        sizing: run_sizing(&args)?,
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
        service,
        backlog: args.backlog,
        privileges: Privileges {
            account,
            ..Privileges::default()
        },
        socket_mode: None,
        socket_owner: None,
        model: args.model,
        proxy_protocol: args.proxy_protocol,
    };
    service_config
        .check_model()
        .map_err(|why| Error::Usage(why.replace("model = ", "--model ")))?;
    let config = Config {
        file: "(command line)".into(),
        daemon: DaemonConfig {
            graceful_timeout: args.graceful_timeout,
            control: PathBuf::new(),
            pidfile: None,
            log: None,
            syslog_facility: 3,
            syslog_socket: PathBuf::new(),
        },
        services: vec![service_config],
    };
    let mut plan = Plan::from_config(&config);
    plan.control = None;
    Master::new(vec![], plan, None, Announce::Address)?
        .run()
        .map(|_| ())
}

/// A fixed pool of --workers, or an adaptive one when a spare or maximum
/// is given (the config file's defaults fill in the rest).
fn run_sizing(args: &RunArgs) -> Result<Sizing, Error> {
    let workers = args.workers.map(|n| n as usize);
    if args.min_spare.is_none() && args.max_spare.is_none() && args.max_workers.is_none() {
        return Ok(Sizing::Fixed(workers.unwrap_or_else(default_workers)));
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

    /// The same, with an absolute path.
    fn absolute(self) -> Source {
        match self {
            Source::File(path) => Source::File(absolute(&path)),
            other => other,
        }
    }

    /// The control socket's path, read leniently from a file that may not
    /// pass `check` (the default when it cannot be read at all).
    fn control_path_only(&self) -> PathBuf {
        let file = match self {
            Source::File(path) => Some(path.clone()),
            Source::Default => Some(PathBuf::from(config::DEFAULT_PATH)),
        };
        file.and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|t| t.get("daemon")?.get("control")?.as_str().map(PathBuf::from))
            .unwrap_or_else(config::default_control)
    }

    /// The file's absolute path (a detached daemon runs in /, so a binary
    /// upgrade must not be given a relative one); `None` for the embedded
    /// default.
    fn absolute_path(&self) -> Option<PathBuf> {
        let path = match self {
            Source::File(path) => path.clone(),
            Source::Default if Path::new(config::DEFAULT_PATH).exists() => {
                PathBuf::from(config::DEFAULT_PATH)
            }
            Source::Default => return None,
        };
        std::fs::canonicalize(&path).ok().or(Some(path))
    }

    /// No file given and none at the default path.
    fn is_embedded(&self) -> bool {
        matches!(self, Source::Default) && !Path::new(config::DEFAULT_PATH).exists()
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

fn serve(args: ServeArgs) -> Result<(), Error> {
    init_log(args.verbose);
    // Started by an old master's USR2: it passed the pidfile and a pipe to
    // say "ready" on; the sockets come as socket activation's do.
    let upgrade_from = std::env::var("PREFORKD_UPGRADE_FROM").ok();
    std::env::remove_var("PREFORKD_UPGRADE_FROM");
    let inherited_pidfile = crate::sys::daemon::inherited_fd("PREFORKD_PIDFILE_FD");
    let inherited_pidfile_path = std::env::var_os("PREFORKD_PIDFILE").map(PathBuf::from);
    std::env::remove_var("PREFORKD_PIDFILE");
    let ready_pipe = crate::sys::daemon::inherited_fd("PREFORKD_READY_FD");
    let foreground = args.foreground || upgrade_from.is_some();
    // A master started by an upgrade of a detached one logs as that did.
    let detached = !foreground || std::env::var_os("PREFORKD_DETACHED").is_some();
    std::env::remove_var("PREFORKD_DETACHED");

    // Absolute paths: a detached daemon runs in /, and reloads later.
    let source = Source::of(&args.config).absolute();
    if source.is_embedded() {
        log::info!(
            "M0020 no -c given and no {}: serving the embedded default (the builtins on 127.0.0.1:70xx)",
            config::DEFAULT_PATH
        );
    }
    let config = source.load().map_err(Error::Config)?;
    if crate::sys::privs::current_ids().0 == 0 {
        for s in config
            .services
            .iter()
            .filter(|s| s.privileges.account.is_none())
        {
            log::warn!(
                "W0007 service {}: no user set: its workers run as root",
                s.name
            );
        }
    }

    // A second instance is told at the terminal, before it tries to bind
    // the addresses the first one holds.
    let pidfile_path = inherited_pidfile_path
        .clone()
        .or(args.pidfile.as_deref().map(absolute))
        .or(config.daemon.pidfile.clone())
        .or_else(|| (!foreground).then(|| PathBuf::from(DEFAULT_PIDFILE)));
    let pidfile_error = |path: &Option<PathBuf>, source| Error::Pidfile {
        path: path.clone().unwrap_or_default(),
        source,
    };
    let locked = match (inherited_pidfile, &pidfile_path) {
        (Some(fd), Some(path)) => Some(Pidfile::inherit(fd, path)),
        (_, Some(path)) => Some(Pidfile::lock(path)),
        (_, None) => None,
    };
    let mut pidfile = match locked {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(PidfileError::Running(pid))) => {
            return Err(Error::AlreadyRunning {
                pidfile: pidfile_path.unwrap_or_default(),
                pid,
            })
        }
        Some(Err(PidfileError::Io(source))) => return Err(pidfile_error(&pidfile_path, source)),
    };

    let mut plan = Plan::from_config(&config);
    plan.take_over_control = upgrade_from.is_some();
    let config_path = source.absolute_path();
    let reloader = Box::new(move || {
        source
            .load()
            .map(|c| Plan::from_config(&c))
            .map_err(|e| match e {
                ConfigError::Invalid(diags) => diags.iter().map(|d| d.headline()).collect(),
                read => vec![read.to_string()],
            })
    });
    let upgrading = upgrade_from.is_some();
    let mut master = match Master::new(vec![], plan, Some(reloader), Announce::WithService) {
        Ok(m) => m,
        Err(e) => {
            // Started by an upgrade and failed: the pidfile is still the
            // old master's.
            if let (true, Some(p)) = (upgrading, pidfile) {
                p.keep();
            }
            return Err(e);
        }
    };
    // USR2 starts the binary again on the same config, in the foreground
    // (this process has detached already if it was going to).
    if let Ok(exe) = std::env::current_exe() {
        let mut upgrade_args: Vec<std::ffi::OsString> = vec!["serve".into(), "--foreground".into()];
        if let Some(path) = &config_path {
            upgrade_args.extend(["-c".into(), path.clone().into_os_string()]);
        }
        if args.verbose {
            upgrade_args.push("-v".into());
        }
        master.allow_upgrade(crate::master::upgrade::Upgrader {
            exe,
            args: upgrade_args,
            pidfile: pidfile
                .as_ref()
                .zip(pidfile_path.clone())
                .map(|(p, path)| (path, p.as_raw_fd())),
            detached,
        });
    }
    if let Some(pipe) = ready_pipe {
        // The pidfile names the old master until this one is ready.
        master.report_ready_on(pipe, pidfile.as_ref().map(|p| p.as_raw_fd()));
    }

    // Every check that can fail has passed: from here on, errors go to the log.
    let log_target = config.daemon.log.unwrap_or(if detached {
        LogTarget::Syslog
    } else {
        LogTarget::Stderr
    });
    if log_target == LogTarget::Syslog {
        crate::log::use_syslog(
            config.daemon.syslog_socket.clone(),
            config.daemon.syslog_facility,
        );
    }
    if !foreground {
        crate::sys::daemon::detach().map_err(|source| Error::Startup {
            what: "cannot detach",
            source,
        })?;
    }
    if let (false, Some(p)) = (upgrading, &mut pidfile) {
        p.write_pid()
            .map_err(|source| pidfile_error(&pidfile_path, source))?;
    }
    let result = master.run();
    match result {
        // The new master owns the pidfile now; or, an upgraded master
        // that failed before it was ready leaves it to the old one.
        Ok(Ended::HandedOver) => {
            if let Some(p) = pidfile {
                p.keep();
            }
            Ok(())
        }
        Err(e) if upgrading && read_pid_is_not_ours(pidfile_path.as_deref()) => {
            if let Some(p) = pidfile {
                p.keep();
            }
            Err(e)
        }
        Ok(Ended::Stopped) => Ok(()),
        Err(e) => {
            // Detached, the terminal is gone: the log is where it is read.
            if detached {
                log::error!("M0050 {e}");
            }
            Err(e)
        }
    }
}

/// Whether the pidfile at `path` names another process than this one.
fn read_pid_is_not_ours(path: Option<&Path>) -> bool {
    path.and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid != std::process::id())
}

/// `path` made absolute against the current directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The pidfile a detached `serve` writes when neither --pidfile nor
/// `[daemon] pidfile` names one.
pub const DEFAULT_PIDFILE: &str = "/run/preforkd.pid";

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
