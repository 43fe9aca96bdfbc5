//! Where things are when nothing says otherwise: the config file's path,
//! the embedded default `serve` runs without one, the control socket.

use std::path::PathBuf;

/// Where `serve` and `check` look without `-c`.
pub const DEFAULT_PATH: &str = "/etc/preforkd/preforkd.toml";

/// What `serve` runs when there is no config file at all: the five
/// builtins on 127.0.0.1, each on 7000 + its standard port, so a first run
/// works without root; each with a `timeout` and a `per_source` limit.
pub const EMBEDDED_DEFAULT: &str = r#"# The embedded default of preforkd: the inetd builtins on localhost,
# each on port 7000 + its standard port. Each has the adaptive pool (no
# `workers`), a timeout and a per_source limit, so that idle clients
# from one address cannot take every worker.
[[service]]
name = "echo"
listen = ["127.0.0.1:7007"]
builtin = "echo"
timeout = "60s"
per_source = 10

[[service]]
name = "discard"
listen = ["127.0.0.1:7009"]
builtin = "discard"
timeout = "60s"
per_source = 10

[[service]]
name = "daytime"
listen = ["127.0.0.1:7013"]
builtin = "daytime"
timeout = "60s"
per_source = 10

[[service]]
name = "chargen"
listen = ["127.0.0.1:7019"]
builtin = "chargen"
timeout = "60s"
per_source = 10

[[service]]
name = "time"
listen = ["127.0.0.1:7037"]
builtin = "time"
timeout = "60s"
per_source = 10
"#;

/// Where the control socket is when `[daemon] control` does not say, for
/// root.
pub const DEFAULT_CONTROL: &str = "/run/preforkd.sock";

/// The control socket's default: /run/preforkd.sock for root; for another
/// user, `$XDG_RUNTIME_DIR/preforkd.sock` when that is set (a directory only
/// that user can write), else the same /run path (which such a user cannot
/// create: `serve` then runs without it and says so). Windows, which has
/// no control socket, keeps the /run path as the value `check` shows.
pub fn default_control() -> PathBuf {
    #[cfg(unix)]
    if crate::sys::privs::current_ids().0 != 0 {
        if let Some(dir) =
            std::env::var_os("XDG_RUNTIME_DIR").filter(|d| std::path::Path::new(d).is_absolute())
        {
            return PathBuf::from(dir).join("preforkd.sock");
        }
    }
    PathBuf::from(DEFAULT_CONTROL)
}

/// The name diagnostics give the embedded default.
pub const EMBEDDED_NAME: &str = "(embedded default)";
