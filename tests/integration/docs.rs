//! The documentation keeps up with the code: every flag of every
//! subcommand is in preforkd(8), and every builtin too.

use clap::CommandFactory;

const MAN: &str = include_str!("../../man/preforkd.8");

#[test]
fn every_flag_is_in_the_man_page() {
    let cli = preforkd::cli::Cli::command();
    for sub in cli.get_subcommands() {
        for long in sub.get_arguments().filter_map(|a| a.get_long()) {
            assert!(
                MAN.contains(&format!("Fl -{long}")),
                "--{long} of `preforkd {}` is not documented in man/preforkd.8",
                sub.get_name()
            );
        }
        assert!(
            MAN.contains(&format!("Cm {}", sub.get_name())),
            "subcommand {} missing",
            sub.get_name()
        );
    }
}

#[test]
fn every_builtin_and_ucspi_variable_is_in_the_man_page() {
    for (_, name, _) in preforkd::service::builtin::BUILTINS {
        assert!(
            MAN.contains(name),
            "builtin {name} is not in man/preforkd.8"
        );
    }
    for var in [
        "PROTO",
        "TCPREMOTEIP",
        "TCPREMOTEPORT",
        "TCPLOCALIP",
        "TCPLOCALPORT",
        "IPCLOCALPATH",
    ] {
        assert!(MAN.contains(var), "{var} is not in man/preforkd.8");
    }
}
