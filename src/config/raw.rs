//! The config file as serde reads it: every field a user may write, with
//! its span, and nothing interpreted yet. Unknown keys are rejected here.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// `[daemon]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub graceful_timeout: Option<Spanned<String>>,
    pub control: Option<Spanned<String>>,
    pub pidfile: Option<Spanned<String>>,
    pub log: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub syslog_facility: Option<Spanned<String>>,
    pub syslog_socket: Option<Spanned<String>>,
}

/// `[[service]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub name: Spanned<String>,
    pub listen: Spanned<Vec<Spanned<String>>>,
    pub protocol: Option<Spanned<String>>,
    pub builtin: Option<Spanned<String>>,
    pub exec: Option<Spanned<Vec<String>>>,
    pub wait: Option<Spanned<bool>>,
    pub workers: Option<Spanned<RawWorkers>>,
    pub max_requests: Option<Spanned<i64>>,
    pub max_requests_jitter: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub max_memory: Option<Spanned<SizeOrNumber>>,
    pub log_connections: Option<Spanned<bool>>,
    pub per_source: Option<Spanned<i64>>,
    pub rate: Option<Spanned<String>>,
    pub only_from: Option<Vec<Spanned<String>>>,
    pub no_access: Option<Vec<Spanned<String>>>,
    pub backlog: Option<Spanned<i64>>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub chroot: Option<Spanned<String>>,
    pub directory: Option<Spanned<String>>,
    pub env: Option<Spanned<BTreeMap<String, String>>>,
    pub pass_env: Option<Spanned<Vec<Spanned<String>>>>,
    pub argv0: Option<Spanned<String>>,
    pub limits: Option<Spanned<RawLimits>>,
    pub no_new_privs: Option<bool>,
    pub allow_new_privileges: Option<Spanned<bool>>,
    pub socket_mode: Option<Spanned<String>>,
    pub socket_owner: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
    pub proxy_protocol: Option<Spanned<String>>,
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    pub proxy_timeout: Option<Spanned<String>>,
}

/// `workers = N` or `workers = { start, min_spare, max_spare, max }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawWorkers {
    Count(i64),
    Adaptive(RawSizing),
}

/// The adaptive pool's table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSizing {
    pub start: Option<i64>,
    pub min_spare: Option<i64>,
    pub max_spare: Option<i64>,
    pub max: Option<i64>,
}

/// `limits = { ... }`: setrlimit(2) for the workers and their programs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub nofile: Option<Spanned<i64>>,
    #[serde(rename = "as")]
    pub address_space: Option<Spanned<SizeOrNumber>>,
    pub cpu: Option<Spanned<SizeOrNumber>>,
    pub nproc: Option<Spanned<i64>>,
}

/// A number, or a string with a unit ("512M", "60s").
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum SizeOrNumber {
    Number(i64),
    Text(String),
}
