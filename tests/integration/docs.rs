//! The documentation keeps up with the code: every flag of every
//! subcommand is in preforkd(8), every builtin too, and every key of the
//! config file is in preforkd.toml(5) and in the packaged config.

use std::collections::BTreeSet;

use clap::CommandFactory;

const MAN: &str = include_str!("../../man/preforkd.8");
const MAN_TOML: &str = include_str!("../../man/preforkd.toml.5");
const PACKAGED: &str = include_str!("../../packaging/preforkd.toml");
const RAW: &str = include_str!("../../src/config/raw.rs");

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
        "UDPLOCALIP",
        "UDPLOCALPORT",
        "UDPREMOTEIP",
        "UDPREMOTEPORT",
    ] {
        assert!(MAN.contains(var), "{var} is not in man/preforkd.8");
        assert!(
            MAN_TOML.contains(&format!("Ev {var}")),
            "{var} is not in man/preforkd.toml.5"
        );
    }
}

/// The keys serde reads for `struct NAME` in src/config/raw.rs: each
/// `pub field:`, or the name of its `#[serde(rename = "...")]`.
fn raw_struct_keys(name: &str) -> BTreeSet<String> {
    let start = RAW
        .find(&format!("struct {name} {{"))
        .unwrap_or_else(|| panic!("no `struct {name}` in src/config/raw.rs"));
    let body = &RAW[start..];
    let body = &body[..body.find("\n}").expect("the struct ends")];
    let mut keys = BTreeSet::new();
    let mut rename = None;
    for line in body.lines().skip(1).map(str::trim) {
        if let Some(attr) = line.strip_prefix("#[serde(") {
            assert!(
                !attr.contains("flatten") && !attr.contains("skip"),
                "{name}: `{line}` is not understood by this test; teach it"
            );
            if let Some(r) = attr.split("rename = \"").nth(1) {
                rename = r.split('"').next().map(str::to_string);
            }
        } else if let Some(field) = line.strip_prefix("pub ") {
            let field = field.split(':').next().expect("a field").trim();
            keys.insert(rename.take().unwrap_or_else(|| field.to_string()));
        }
    }
    keys
}

/// The keys serde itself lists for a table, from the error it gives for an
/// unknown key there: "unknown field `x`, expected one of `a`, `b`, ...".
fn keys_serde_expects(config: &str) -> BTreeSet<String> {
    let diags = preforkd::config::parse("test.toml", config).expect_err("an unknown key");
    let message = &diags[0].message;
    let expected = message
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of keys in: {message}"));
    expected
        .split(',')
        .map(|k| k.trim().trim_matches('`').to_string())
        .collect()
}

/// Whether `text` has `before`, then `key` as a whole word (`max` is not
/// `max_requests`, `as` is not `class`), then `after`.
fn mentions(text: &str, before: &str, key: &str, after: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let needle = format!("{before}{key}");
    text.match_indices(&needle).any(|(at, _)| {
        let rest = &text[at + needle.len()..];
        let starts_word = !before.is_empty() || !text[..at].chars().next_back().is_some_and(word);
        let ends_word = !rest.chars().next().is_some_and(word);
        starts_word && ends_word && rest.starts_with(after)
    })
}

#[test]
fn every_config_key_is_in_the_man_page_and_the_packaged_config() {
    let daemon = raw_struct_keys("RawDaemon");
    let service = raw_struct_keys("RawService");
    let sizing = raw_struct_keys("RawSizing");
    let limits = raw_struct_keys("RawLimits");
    // The reading of raw.rs agrees with what serde accepts.
    assert_eq!(
        daemon,
        keys_serde_expects("[daemon]\nno_such_key = 1\n[[service]]\nname = \"a\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\n"),
        "[daemon]"
    );
    assert_eq!(
        service,
        keys_serde_expects("[[service]]\nname = \"a\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nno_such_key = 1\n"),
        "[[service]]"
    );
    assert_eq!(
        limits,
        keys_serde_expects("[[service]]\nname = \"a\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nlimits = { no_such_key = 1 }\n"),
        "limits"
    );
    assert!(limits.contains("as"), "the rename of `as` is honoured");
    assert!(sizing.contains("min_spare"), "{sizing:?}");
    let keys: BTreeSet<&String> = [&daemon, &service, &sizing, &limits]
        .into_iter()
        .flatten()
        .collect();
    assert!(keys.len() >= 40, "only {} keys found: {keys:?}", keys.len());

    let mut missing = Vec::new();
    for key in keys {
        if !mentions(MAN_TOML, "Ic ", key, "") {
            missing.push(format!("`Ic {key}` in man/preforkd.toml.5"));
        }
        if !mentions(PACKAGED, "", key, " =") {
            missing.push(format!("`{key} =` in packaging/preforkd.toml"));
        }
    }
    assert!(missing.is_empty(), "not documented: {}", missing.join(", "));
}
