//! `preforkd compare` on the command line: reads the flags into a
//! [`CompareSpec`] (the `--stevens` preset under them), shows a progress
//! bar while `crate::compare` runs the rounds, and prints the table (full
//! or brief), the charts, the page or the JSON.

use std::path::Path;

use crate::cli::CompareArgs;
use crate::compare::{CompareSpec, Progress, Request, Target};
use crate::default_workers;
use crate::error::Error;
use crate::load::Limit;
use crate::models::Model;
use crate::service::{Builtin, ExecSpec};

/// The designs of UNP chapter 30 in the book's order (Figure 30.1's rows
/// 0 to 8: 30.4 to 30.12), as `--stevens` runs them.
const STEVENS_MODELS: [Model; 9] = [
    Model::Iterative,
    Model::Fork,
    Model::Prefork,
    Model::PreforkLock,
    Model::PreforkMutex,
    Model::PreforkPass,
    Model::Threads,
    Model::PoolLock,
    Model::PoolPass,
];

pub(crate) fn compare(args: CompareArgs) -> Result<(), Error> {
    let spec = spec_of(&args)?;
    let bar = indicatif::ProgressBar::new(crate::compare::measurements(&spec) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed:>4} [{bar:30}] {pos}/{len}, {eta} left: {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut unmeasured = 0;
    let report = crate::compare::run(&spec, |step| match step {
        Progress::Starting(what) => bar.set_message(what.to_string()),
        Progress::Failed(why) => {
            unmeasured += 1;
            bar.suspend(|| eprintln!("preforkd: {why}"));
        }
        Progress::Done => bar.inc(1),
    });
    bar.finish_and_clear();
    let report = report.map_err(Error::Failed)?;
    if let Some(path) = &args.chart {
        crate::compare::chart::write(path, &report).map_err(Error::Failed)?;
    }
    if let Some(path) = &args.html {
        crate::compare::html::write(path, &report).map_err(Error::Failed)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let full = crate::compare::table(&report);
        let narrow = console::Term::stdout()
            .size_checked()
            .is_some_and(|(_, columns)| (columns as usize) < crate::compare::width(&full));
        let table = if args.brief || (narrow && !args.full) {
            crate::compare::brief_table(&report)
        } else {
            full
        };
        print!("{table}\n{}", crate::compare::footer(&report));
    }
    for r in report.rows.iter().filter(|r| r.failed > 0) {
        eprintln!(
            "preforkd: {} at {}: {} connections failed; the first: {}",
            r.model,
            crate::compare::clients_text(r.clients),
            r.failed,
            r.first_error.as_deref().unwrap_or("(no reason given)")
        );
    }
    let failed: u64 = report.rows.iter().map(|r| r.failed).sum();
    match (unmeasured, failed) {
        (0, 0) => Ok(()),
        (0, failed) => Err(Error::Failed(format!("{failed} connections failed"))),
        (n, _) => Err(Error::Failed(format!(
            "{n} of the measurements could not be made"
        ))),
    }
}

/// The spec of the flags, over the `--stevens` preset when it is given.
fn spec_of(args: &CompareArgs) -> Result<CompareSpec, Error> {
    let stevens = args.stevens;
    let service = match (&args.service, stevens) {
        (Some(s), _) => s.clone(),
        (None, true) => "work:bytes=4000".to_string(),
        (None, false) if !args.program.is_empty() => "exec".to_string(),
        (None, false) => "echo".to_string(),
    };
    let (target, request) = target_of(&service, args)?;
    let models = match (args.models.is_empty(), stevens) {
        (false, _) => args.models.clone(),
        (true, true) => STEVENS_MODELS.to_vec(),
        (true, false) => crate::models::MODELS.iter().map(|(m, _)| *m).collect(),
    };
    let clients = match (args.clients.is_empty(), stevens) {
        (false, _) => args.clients.clone(),
        (true, true) => vec![5],
        (true, false) => vec![1, 8, 64],
    };
    if clients.iter().any(|&c| c == 0 || c > 4096) {
        return Err(Error::Usage(
            "--clients: each count must be from 1 to 4096".into(),
        ));
    }
    let limit = match (args.limit.connections, args.limit.duration) {
        (None, None) if stevens => Limit::Connections(2000),
        (None, None) => Limit::Connections(DEFAULT_CONNECTIONS),
        _ => args.limit.limit(),
    };
    let workers = match (args.workers, stevens) {
        (Some(n), _) => n as usize,
        (None, true) => 15,
        (None, false) => default_workers(),
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64 | 1);
    Ok(CompareSpec {
        models,
        clients,
        limit,
        repeat: args.repeat.unwrap_or(DEFAULT_REPEAT) as usize,
        target,
        request,
        workers,
        seed,
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    })
}

/// Connections per measurement when neither --connections nor --duration
/// is given, and rounds when --repeat is not: a default run of every model
/// at three client counts stays under two minutes on two cores.
const DEFAULT_CONNECTIONS: u64 = 2000;
const DEFAULT_REPEAT: u32 = 5;

/// What the server runs, and what each client sends, for `--service`.
fn target_of(service: &str, args: &CompareArgs) -> Result<(Target, Request), Error> {
    let bytes = |default: usize| args.bytes.map_or(default, |k| k as usize);
    if service == "exec" || service.starts_with("exec:") {
        let argv = match (service.strip_prefix("exec:"), args.program.is_empty()) {
            (Some(_), false) => {
                return Err(Error::Usage(
                    "--service exec:PROGRAM and -- PROGRAM: give the program once".into(),
                ))
            }
            (Some(words), true) => {
                split_words(words).map_err(|e| Error::Usage(format!("--service exec: {e}")))?
            }
            (None, _) => args.program.clone(),
        };
        let Some(program) = argv.first() else {
            return Err(Error::Usage(
                "--service exec needs a program: exec:\"PROGRAM ARGS\" or -- PROGRAM ARGS".into(),
            ));
        };
        ExecSpec::new(Path::new(program), Vec::new()).map_err(Error::Program)?;
        return Ok((Target::Exec(argv), Request::Echo(bytes(1024))));
    }
    if !args.program.is_empty() {
        return Err(Error::Usage(format!(
            "--service {service} runs no program: leave out -- {}",
            args.program.join(" ")
        )));
    }
    if service == "work" || service.starts_with("work:") {
        return work_of(service, bytes(if args.stevens { 4000 } else { 1024 }));
    }
    match service.parse().map_err(Error::UnknownBuiltin)? {
        Builtin::Work(_) => work_of(service, bytes(1024)),
        Builtin::Echo => Ok((Target::Builtin(service.into()), Request::Echo(bytes(1024)))),
        // daytime and time answer without being asked: nothing to send.
        Builtin::Daytime | Builtin::Time => match args.bytes {
            Some(k) if k > 0 => Err(Error::Usage(format!(
                "--service {service} reads nothing: use --bytes 0 or leave it out"
            ))),
            _ => Ok((Target::Builtin(service.into()), Request::Echo(0))),
        },
        Builtin::Discard | Builtin::Chargen | Builtin::Metrics => Err(Error::Usage(format!(
            "--service {service}: compare measures services that answer and close: echo, daytime, time, work or exec"
        ))),
    }
}

/// `work:bytes=N,cpu=D,sleep=D`: the client asks for N bytes (the one
/// parameter that is the client's); the rest is the server's builtin.
fn work_of(service: &str, default_bytes: usize) -> Result<(Target, Request), Error> {
    let mut bytes = default_bytes;
    let mut server = Vec::new();
    for param in service
        .strip_prefix("work:")
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
    {
        match param.strip_prefix("bytes=") {
            Some(n) => {
                bytes = n.parse().ok().filter(|&n| n <= 64 << 20).ok_or_else(|| {
                    Error::Usage(format!(
                        "--service work: bytes={n}: expected a number of bytes up to 67108864"
                    ))
                })?;
            }
            None => server.push(param),
        }
    }
    let builtin = if server.is_empty() {
        "work".to_string()
    } else {
        format!("work:{}", server.join(","))
    };
    // The server's parameters are checked here, with the builtin's own
    // parser, rather than by each server compare starts.
    builtin
        .parse::<Builtin>()
        .map_err(|e| Error::Usage(format!("--service {service}: {e}")))?;
    Ok((Target::Builtin(builtin), Request::Work(bytes)))
}

/// Splits a command line into words as a shell would, without expanding
/// anything: blanks separate words, '…' keeps everything, "…" keeps all
/// but \" and \\, and a backslash outside quotes keeps the next character.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("a ' is not closed".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("a \" is not closed".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("a \" is not closed".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("a \\ ends the line".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn words_split_as_a_shell_would() {
        assert_eq!(
            split_words(r#"/bin/sh -c 'echo "a b"' x\ y "q\"z""#).unwrap(),
            vec!["/bin/sh", "-c", "echo \"a b\"", "x y", "q\"z"]
        );
        assert_eq!(split_words("  ''  a ").unwrap(), vec!["", "a"]);
        assert!(split_words("'open").is_err());
        assert!(split_words("\"open").is_err());
        assert!(split_words("end\\").is_err());
    }
}
