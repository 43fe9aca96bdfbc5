//! `preforkd compare` on the command line: checks the arguments, shows a
//! progress bar while `crate::compare` runs the models, and prints the
//! table, the chart or the JSON.

use std::path::Path;

use crate::cli::CompareArgs;
use crate::default_workers;
use crate::error::Error;
use crate::service::{Builtin, ExecSpec};

pub(crate) fn compare(args: CompareArgs) -> Result<(), Error> {
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
            Builtin::Work(_) => {
                return Err(Error::Usage(format!(
                    "--service {}: compare does not drive the work builtin yet",
                    args.service
                )))
            }
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
