//! The configuration: the TOML file `preforkd serve` runs and `preforkd
//! check` validates, turned into typed values, with every mistake reported
//! at its file:line:column.
//!
//! Reading happens in three steps, so that one run reports every error it
//! can: the TOML syntax (all syntax errors), the shape of each table
//! (unknown keys, wrong types: one error per table), and the meaning of each
//! value (addresses, users, programs, durations: every error). This module
//! does not bind, fork or look at running processes.

mod check;
mod defaults;
pub mod diag;
pub mod duration;
pub mod inetd;
pub mod maxima;
mod model;
mod policy;
mod raw;
pub mod size;
#[cfg(test)]
mod tests;
mod types;

use std::fmt;
use std::path::{Path, PathBuf};

pub use check::parse;
pub use defaults::{
    default_control, DEFAULT_CONTROL, DEFAULT_PATH, EMBEDDED_DEFAULT, EMBEDDED_NAME,
};
pub use diag::Diagnostic;
pub use model::{Model, UnknownModel, MODELS};
pub use types::{DaemonConfig, LogTarget, PoolSettings, Protocol, ServiceConfig, Sizing};

/// A checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from, as named.
    pub file: String,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// Every `[[service]]`, in file order.
    pub services: Vec<ServiceConfig>,
}

/// Why a config could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is wrong; every problem found.
    Invalid(Vec<Diagnostic>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(
                f,
                "cannot read {}: {}",
                path.display(),
                crate::sys::fd::describe(source)
            ),
            ConfigError::Invalid(diags) => {
                let (shown, more) = Diagnostic::shown(diags);
                let mut lines: Vec<String> = shown.iter().map(|d| d.to_string()).collect();
                if more > 0 {
                    lines.push(format!("... and {more} more errors"));
                }
                write!(f, "{}", lines.join("\n"))
            }
        }
    }
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&path.display().to_string(), &text).map_err(ConfigError::Invalid)
}
