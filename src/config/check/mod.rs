//! The checker: the meaning of every value of a parsed TOML file, each
//! mistake a [`Diagnostic`] at its file:line:column, as many as one run
//! can find. This file holds the checker itself, the file's top level and
//! `[daemon]`; each `[[service]]` is checked in `service.rs`, its access
//! rules and PROXY protocol in `access.rs`, its builtin or program and
//! limits in `program.rs`.
//!
//! It reads text only: it does not bind, fork or look at processes (a user
//! or group is looked up, to name a missing one at its line).

mod access;
mod program;
mod service;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::config::diag::{Diagnostic, LineIndex};
use crate::config::raw::{RawDaemon, RawService};
use crate::config::{default_control, duration, Config, DaemonConfig, LogTarget, Protocol};
use std::path::Path;

use crate::net::ListenAddr;
use crate::privileges::Account;

/// Checks `text`, naming it `file` in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut checker = Checker {
        file,
        text,
        lines: LineIndex::new(text),
        diags: Vec::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            checker.toml_error(&e, 0..0);
        }
        return Err(checker.diags);
    }
    let config = checker.config(root.into_inner());
    match config {
        Some(c) if checker.diags.is_empty() => Ok(c),
        _ => Err(checker.diags),
    }
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    /// Where each line of `text` starts: diagnostics find their line by a
    /// binary search, so checking stays linear in the file's size.
    lines: LineIndex,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = Diagnostic::at_indexed(self.file, self.text, &self.lines, span, message);
        self.diags.push(d);
    }

    pub(super) fn toml_error(&mut self, e: &toml::de::Error, fallback: Range<usize>) {
        let mut message = e.message().trim().replace('\n', " ");
        // serde's words for an untagged enum say nothing to a user.
        for (inner, expected) in [
            ("RawWorkers", "invalid type for workers: expected a number, or a table { start, min_spare, max_spare, max } of numbers"),
            ("SizeOrNumber", "invalid type: expected a number, or a string with a unit"),
        ] {
            if message.contains(&format!("untagged enum {inner}")) {
                message = expected.to_string();
            }
        }
        self.error(e.span().unwrap_or(fallback), message);
    }

    pub(super) fn deserialize<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let span = value.span();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.toml_error(&e, span);
                None
            }
        }
    }

    fn config(&mut self, root: DeTable<'_>) -> Option<Config> {
        let mut raw_daemon = RawDaemon::default();
        let mut raw_services = Vec::new();
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "daemon" => {
                    // A mistake here must not hide those in the services.
                    if let Some(d) = self.deserialize(value) {
                        raw_daemon = d;
                    }
                }
                "service" => {
                    let span = value.span();
                    match value.into_inner() {
                        DeValue::Array(items) => {
                            for item in items {
                                let span = item.span();
                                if let Some(s) = self.deserialize::<RawService>(item) {
                                    raw_services.push((s, span));
                                }
                            }
                        }
                        _ => self.error(span, "`service` must be written as [[service]] tables"),
                    }
                }
                other => self.error(
                    key.span(),
                    format!("unknown section '{other}' (expected [daemon] or [[service]])"),
                ),
            }
        }
        let daemon = self.daemon(&raw_daemon);
        let default_account = self.account(raw_daemon.user.as_ref(), raw_daemon.group.as_ref());
        if raw_services.is_empty() && self.diags.is_empty() {
            self.diags.push(Diagnostic::whole_file(
                self.file,
                "no [[service]] is defined",
            ));
        }
        let mut services = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut addresses: BTreeMap<(ListenAddr, Protocol), String> = BTreeMap::new();
        for (raw, span) in &raw_services {
            let Some(service) = self.service(raw, span.clone(), default_account.clone().flatten())
            else {
                continue;
            };
            let (line, _) = self.lines.line_of(span.start);
            if let Some(first) = names.insert(service.name.clone(), line) {
                self.error(
                    raw.name.span(),
                    format!(
                        "duplicate service name '{}' (first defined at line {first})",
                        service.name
                    ),
                );
            }
            for (addr, spanned) in service.listen.iter().zip(raw.listen.get_ref()) {
                // Port 0 asks the system for a fresh port each time.
                let key = (addr.clone(), service.pool.protocol);
                if addr.is_port_zero() {
                    continue;
                }
                if let Some(other) = addresses.insert(key, service.name.clone()) {
                    self.error(
                        spanned.span(),
                        format!("duplicate listen address {addr}/{} (already used by service '{other}')", service.pool.protocol),
                    );
                }
            }
            services.push(service);
        }
        Some(Config {
            file: self.file.to_string(),
            daemon: daemon?,
            services,
        })
    }

    fn daemon(&mut self, raw: &RawDaemon) -> Option<DaemonConfig> {
        let graceful_timeout = match &raw.graceful_timeout {
            None => Duration::from_secs(30),
            Some(s) => self.duration(s)?,
        };
        let control = match &raw.control {
            None => default_control(),
            Some(c) if Path::new(c.get_ref()).is_absolute() => PathBuf::from(c.get_ref()),
            Some(c) => {
                self.error(
                    c.span(),
                    format!("control '{}' must be an absolute path", c.get_ref()),
                );
                return None;
            }
        };
        let absolute = |checker: &mut Self,
                        v: &Option<Spanned<String>>,
                        what: &str|
         -> Option<Option<PathBuf>> {
            match v {
                None => Some(None),
                Some(p) if Path::new(p.get_ref()).is_absolute() => {
                    Some(Some(PathBuf::from(p.get_ref())))
                }
                Some(p) => {
                    checker.error(
                        p.span(),
                        format!("{what} '{}' must be an absolute path", p.get_ref()),
                    );
                    None
                }
            }
        };
        let pidfile = absolute(self, &raw.pidfile, "pidfile")?;
        let syslog_socket = absolute(self, &raw.syslog_socket, "syslog_socket")?
            .unwrap_or_else(|| PathBuf::from("/dev/log"));
        let log = match raw.log.as_ref().map(|l| (l, l.get_ref().as_str())) {
            None => None,
            Some((_, "stderr")) => Some(LogTarget::Stderr),
            Some((_, "syslog")) => Some(LogTarget::Syslog),
            Some((l, other)) => {
                self.error(
                    l.span(),
                    format!("unknown log '{other}' (expected stderr or syslog)"),
                );
                return None;
            }
        };
        let log_level = match &raw.log_level {
            None => None,
            Some(l) => match crate::log::parse_level(l.get_ref()) {
                Ok(level) => Some(level),
                Err(why) => {
                    self.error(l.span(), why);
                    return None;
                }
            },
        };
        let syslog_facility = match &raw.syslog_facility {
            None => 3,
            Some(f) => match crate::log::FACILITIES
                .iter()
                .find(|(name, _)| name == f.get_ref())
            {
                Some((_, code)) => *code,
                None => {
                    let names: Vec<&str> = crate::log::FACILITIES.iter().map(|(n, _)| *n).collect();
                    self.error(
                        f.span(),
                        format!(
                            "unknown syslog_facility '{}' (expected one of: {})",
                            f.get_ref(),
                            names.join(", ")
                        ),
                    );
                    return None;
                }
            },
        };
        Some(DaemonConfig {
            graceful_timeout,
            control,
            pidfile,
            log,
            log_level,
            syslog_facility,
            syslog_socket,
        })
    }

    pub(super) fn duration(&mut self, s: &Spanned<String>) -> Option<Duration> {
        duration::parse_duration(s.get_ref())
            .map_err(|e| self.error(s.span(), e))
            .ok()
    }

    /// The account of `user` (and `group`); `Some(None)` when none is asked
    /// for, `None` on an error (already reported).
    pub(super) fn account(
        &mut self,
        user: Option<&Spanned<String>>,
        group: Option<&Spanned<String>>,
    ) -> Option<Option<Account>> {
        let Some(user) = user else {
            if let Some(g) = group {
                self.error(g.span(), "`group` needs a `user` to go with it");
                return None;
            }
            return Some(None);
        };
        match Account::lookup(user.get_ref(), group.map(|g| g.get_ref().as_str())) {
            Ok(a) => Some(Some(a)),
            Err(e) => {
                let span = if e.contains("group") {
                    group.map(|g| g.span())
                } else {
                    None
                };
                self.error(span.unwrap_or(user.span()), e);
                None
            }
        }
    }
}
