//! What a service runs: a builtin or a program (its argv, environment and
//! user), and the resource limits of its workers.
use std::ffi::OsString;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use crate::config::raw::{RawLimits, RawService, SizeOrNumber};
use crate::config::{duration, maxima, size};
use std::path::Path;

use super::Checker;
use crate::privileges::Limits;
use crate::service::{Builtin, ExecSpec, Service};

impl Checker<'_> {
    pub(super) fn handler(
        &mut self,
        raw: &RawService,
        span: &Range<usize>,
        chroot: Option<&Path>,
    ) -> Option<Service> {
        if raw.builtin.is_some() {
            for (key, span) in [
                ("env", raw.env.as_ref().map(|e| e.span())),
                ("pass_env", raw.pass_env.as_ref().map(|e| e.span())),
                ("directory", raw.directory.as_ref().map(|d| d.span())),
                ("argv0", raw.argv0.as_ref().map(|a| a.span())),
            ] {
                if let Some(span) = span {
                    self.error(span, format!("`{key}` applies to exec services only"));
                }
            }
        }
        match (&raw.builtin, &raw.exec) {
            (Some(b), None) => match b.get_ref().parse::<Builtin>() {
                Ok(builtin) => Some(Service::Builtin(builtin)),
                Err(e) => {
                    self.error(b.span(), e.to_string());
                    None
                }
            },
            (None, Some(exec)) => {
                let Some((program, args)) = exec.get_ref().split_first() else {
                    self.error(
                        exec.span(),
                        "`exec` needs a program: exec = [\"/path/to/program\", \"arg\", ...]",
                    );
                    return None;
                };
                let args: Vec<OsString> = args.iter().map(OsString::from).collect();
                let directory = raw.directory.as_ref().and_then(|d| {
                    let dir = PathBuf::from(d.get_ref());
                    let outside = match chroot {
                        Some(root) => root.join(dir.strip_prefix("/").unwrap_or(&dir)),
                        None => dir.clone(),
                    };
                    if dir.is_absolute() && outside.is_dir() {
                        Some(dir)
                    } else {
                        let message = format!(
                            "directory '{}' is not an existing absolute directory",
                            dir.display()
                        );
                        self.error(d.span(), message);
                        None
                    }
                });
                let env = raw
                    .env
                    .as_ref()
                    .map(|e| e.get_ref().clone())
                    .unwrap_or_default();
                let mut pass_env = Vec::new();
                for name in raw.pass_env.iter().flat_map(|p| p.get_ref()) {
                    match ExecSpec::check_pass_env(name.get_ref()) {
                        Ok(()) => pass_env.push(name.get_ref().as_str()),
                        Err(e) => self.error(name.span(), e),
                    }
                }
                let argv0 = raw.argv0.as_ref().map(|a| a.get_ref().clone());
                let spec = ExecSpec::new_in(Path::new(program), args, chroot).and_then(|spec| {
                    let spec = spec
                        .with_env(env)
                        .with_pass_env(pass_env)
                        .with_directory(directory)
                        .with_argv0(argv0);
                    spec.check().map(|()| spec)
                });
                match spec {
                    Ok(spec) => Some(Service::Exec(spec)),
                    Err(e) => {
                        self.error(exec.span(), e.to_string());
                        None
                    }
                }
            }
            (Some(b), Some(_)) => {
                self.error(
                    b.span(),
                    "a service has either `builtin` or `exec`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    span.clone(),
                    format!(
                        "service '{}' needs `builtin = \"NAME\"` or `exec = [\"PROGRAM\", ...]`",
                        raw.name.get_ref()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn limits(&mut self, raw: &RawLimits) -> Limits {
        let mut count = |v: &Option<Spanned<i64>>, what: &str, max: u64| -> Option<u64> {
            let v = v.as_ref()?;
            u64::try_from(*v.get_ref())
                .map_err(|_| "expected a positive number".to_string())
                .and_then(|n| maxima::at_most(n, max))
                .map_err(|e| self.error(v.span(), format!("invalid {what}: {e}")))
                .ok()
        };
        let open_files = count(&raw.nofile, "nofile", maxima::MAX_NOFILE);
        let processes = count(&raw.nproc, "nproc", maxima::MAX_NPROC);
        let address_space = raw.address_space.as_ref().and_then(|v| match v.get_ref() {
            SizeOrNumber::Number(n) => u64::try_from(*n)
                .map_err(|_| "expected a positive number of bytes".to_string())
                .and_then(size::check_size)
                .map_err(|e| self.error(v.span(), format!("invalid as: {e}")))
                .ok(),
            SizeOrNumber::Text(t) => size::parse_size(t)
                .map_err(|e| self.error(v.span(), e))
                .ok(),
        });
        let cpu_seconds = raw.cpu.as_ref().and_then(|v| match v.get_ref() {
            SizeOrNumber::Number(n) => u64::try_from(*n)
                .map_err(|_| "expected a positive number of seconds".to_string())
                .and_then(|n| maxima::at_most(n, maxima::MAX_DURATION.as_secs()))
                .map_err(|e| self.error(v.span(), format!("invalid cpu: {e} seconds")))
                .ok(),
            SizeOrNumber::Text(t) => duration::parse_duration(t)
                .map(|d| d.as_secs())
                .map_err(|e| self.error(v.span(), e))
                .ok(),
        });
        // RLIMIT_CPU counts whole seconds, and Linux takes 0 as 1.
        let cpu_seconds = match (cpu_seconds, &raw.cpu) {
            (Some(0), Some(v)) => {
                self.error(v.span(), "invalid cpu: at least 1s of CPU time");
                None
            }
            (other, _) => other,
        };
        Limits {
            open_files,
            address_space,
            cpu_seconds,
            processes,
        }
    }
}
