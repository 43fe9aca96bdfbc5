//! The `preforkd` command: parse, run, print one line on error, exit 0/1/2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match preforkd::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: print as clap formats them, exit 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("preforkd: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    match preforkd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", err.report());
            ExitCode::from(err.exit_code())
        }
    }
}

/// clap's error as one line: its first line without the `error: ` prefix
/// (with the list that follows it, when it ends in a colon), and where to
/// look for help.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid command line");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if line.ends_with(':') {
        let items: Vec<&str> = lines
            .take_while(|l| l.starts_with(' '))
            .map(str::trim)
            .collect();
        line = format!("{} {}", line, items.join(", "));
    }
    format!("{line} (see 'preforkd --help')")
}
