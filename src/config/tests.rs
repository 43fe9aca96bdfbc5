//! The checker, tried on files right and wrong.

use super::*;

#[test]
fn the_embedded_default_is_valid() {
    let c = parse(EMBEDDED_NAME, EMBEDDED_DEFAULT).unwrap();
    let ports: Vec<String> = c.services.iter().map(|s| s.listen[0].to_string()).collect();
    assert_eq!(
        ports,
        [
            "127.0.0.1:7007",
            "127.0.0.1:7009",
            "127.0.0.1:7013",
            "127.0.0.1:7019",
            "127.0.0.1:7037"
        ]
    );
    // Idle clients: every service times out and limits one address,
    // on the adaptive pool.
    for s in &c.services {
        assert!(
            s.pool.timeout.is_some() && s.pool.access.per_source.is_some(),
            "{}",
            s.name
        );
        assert!(s.pool.sizing.is_adaptive(), "{}", s.name);
    }
}

#[test]
fn reports_every_error_with_its_position() {
    let text =
        "[[service]]\nname = \"a\"\nlisten = [\"1.2.3.4:x\"]\nbuiltin = \"ech0\"\nworkers = 0\n";
    let diags = parse("t.toml", text).unwrap_err();
    let heads: Vec<String> = diags.iter().map(|d| d.headline()).collect();
    assert_eq!(heads.len(), 3, "{heads:?}");
    assert!(
        heads[0].starts_with("t.toml:3:11: invalid address"),
        "{heads:?}"
    );
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("t.toml:4:11: unknown builtin")),
        "{heads:?}"
    );
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("t.toml:5:11: invalid workers")),
        "{heads:?}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_position() {
    let text =
        "[[service]]\nname = \"a\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\ncolour = 1\n";
    let diags = parse("t.toml", text).unwrap_err();
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0]
            .headline()
            .starts_with("t.toml:5:1: unknown field `colour`"),
        "{}",
        diags[0]
    );
}
