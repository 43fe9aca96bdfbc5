//! One `[[service]]`: its name, addresses, protocol and model, its pool's
//! size, its socket file; the pieces it is made of are checked by the
//! other files of `check`.
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use crate::config::raw::{self, RawService, SizeOrNumber};
use crate::config::{maxima, size, Model, PoolSettings, Protocol, ServiceConfig, Sizing};

use super::Checker;
use crate::net::ListenAddr;
use crate::privileges::{Account, Privileges};

impl Checker<'_> {
    /// One `[[service]]`, whole: `None` if any of it is wrong (each
    /// mistake is in the diagnostics).
    pub(super) fn service(
        &mut self,
        raw: &RawService,
        span: Range<usize>,
        default_account: Option<Account>,
    ) -> Option<ServiceConfig> {
        let errors_before = self.diags.len();
        let name = self.service_name(raw);
        let protocol = self.protocol(raw, &span);
        // A UDP program is a wait service, and has a program's settings.
        if protocol == Protocol::Udp && raw.exec.is_none() {
            self.not_for_udp(raw);
        }
        let listen = self.listen(raw, protocol);
        let pool = self.pool_settings(raw, protocol, default_account);
        let service = self.handler(raw, &span, pool.privileges.chroot.as_deref());
        if self.diags.len() > errors_before {
            return None;
        }
        let config = ServiceConfig {
            name,
            listen,
            service: service?,
            pool,
        };
        if let Err(why) = config.check_protocol() {
            let at = raw.protocol.as_ref().map_or(span, |p| p.span());
            self.error(at, why);
            return None;
        }
        if let Err(why) = config.check_model() {
            let at = raw.model.as_ref().map_or(span, |m| m.span());
            self.error(at, why);
            return None;
        }
        if let Err(why) = config.check_wait() {
            let at = raw.wait.as_ref().map_or(span, |w| w.span());
            self.error(at, why);
            return None;
        }
        if let Err(why) = config.check_unix_proxy() {
            let at = raw.proxy_protocol.as_ref().map_or(span, |p| p.span());
            self.error(at, why);
            return None;
        }
        Some(config)
    }

    fn service_name(&mut self, raw: &RawService) -> String {
        let name = raw.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.error(
                raw.name.span(),
                format!("invalid service name '{name}': use letters, digits, '-', '_' and '.'"),
            );
        }
        name
    }

    fn protocol(&mut self, raw: &RawService, span: &Range<usize>) -> Protocol {
        match raw.protocol.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some(other) => {
                let span = raw
                    .protocol
                    .as_ref()
                    .map(|p| p.span())
                    .unwrap_or(span.clone());
                self.error(
                    span,
                    format!("unknown protocol '{other}' (expected tcp or udp)"),
                );
                Protocol::Tcp
            }
        }
    }

    fn listen(&mut self, raw: &RawService, protocol: Protocol) -> Vec<ListenAddr> {
        if raw.listen.get_ref().is_empty() {
            self.error(raw.listen.span(), "`listen` needs at least one address");
        }
        let mut listen = Vec::new();
        for addr in raw.listen.get_ref() {
            match addr.get_ref().parse::<ListenAddr>() {
                Ok(ListenAddr::Unix(_)) if protocol == Protocol::Udp => {
                    self.error(addr.span(), "a unix: address cannot serve udp")
                }
                Ok(a) => listen.push(a),
                Err(e) => self.error(addr.span(), e.to_string()),
            }
        }
        listen
    }

    /// How the service's pools run: every key but its name, addresses and
    /// what it serves.
    fn pool_settings(
        &mut self,
        raw: &RawService,
        protocol: Protocol,
        default_account: Option<Account>,
    ) -> PoolSettings {
        let sizing = match &raw.workers {
            None => Sizing::default_adaptive(),
            Some(w) => self.sizing(w),
        };
        let max_requests = self.positive(&raw.max_requests, "max_requests");
        let max_requests_jitter = self
            .positive(&raw.max_requests_jitter, "max_requests_jitter")
            .unwrap_or_else(|| max_requests.map_or(0, |m| m / 10));
        let access = self.access(raw);
        let max_memory = self.max_memory(raw);
        let timeout = raw.timeout.as_ref().and_then(|t| {
            let d = self.duration(t)?;
            if d.is_zero() {
                self.error(t.span(), "invalid timeout: it must be longer than 0s");
                return None;
            }
            Some(d)
        });
        let backlog = self.backlog(raw);
        let privileges = self.privileges(raw, default_account);
        let (socket_mode, socket_owner) = self.socket_file(raw);
        let model = match &raw.model {
            None => Model::Prefork,
            Some(m) => m.get_ref().parse::<Model>().unwrap_or_else(|e| {
                self.error(m.span(), e.to_string());
                Model::Prefork
            }),
        };
        let proxy_protocol = self.proxy(raw);
        // inetd's `wait`: the default for a program on UDP, which reads
        // the datagrams itself.
        let wait = raw
            .wait
            .as_ref()
            .map_or(protocol == Protocol::Udp && raw.exec.is_some(), |w| {
                *w.get_ref()
            });
        // A single-process model without `workers` gets a fixed count, and
        // a wait service its one worker.
        let sizing = match (&raw.workers, model.is_process_pool()) {
            (None, _) if wait => Sizing::Fixed(1),
            (None, false) => Sizing::Fixed(crate::default_workers()),
            _ => sizing,
        };
        PoolSettings {
            protocol,
            sizing,
            max_requests,
            max_requests_jitter,
            timeout,
            max_memory,
            log_connections: raw.log_connections.as_ref().is_some_and(|b| *b.get_ref()),
            access,
            backlog,
            privileges,
            socket_mode,
            socket_owner,
            model,
            proxy_protocol,
            wait,
        }
    }

    /// `max_requests` and `max_requests_jitter`: a count of requests, above
    /// 0 but for the jitter.
    fn positive(&mut self, v: &Option<Spanned<i64>>, what: &str) -> Option<u64> {
        let v = v.as_ref()?;
        match u64::try_from(*v.get_ref()) {
            Ok(n) if n > maxima::MAX_REQUESTS => {
                self.error(
                    v.span(),
                    format!("invalid {what} = {n}: at most {}", maxima::MAX_REQUESTS),
                );
                None
            }
            Ok(n) if n > 0 || what == "max_requests_jitter" => Some(n),
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "invalid {what} = {}: expected a positive number",
                        v.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn max_memory(&mut self, raw: &RawService) -> Option<u64> {
        let m = raw.max_memory.as_ref()?;
        match m.get_ref() {
            SizeOrNumber::Number(n) if *n > 0 => size::check_size(*n as u64)
                .map_err(|e| self.error(m.span(), format!("invalid max_memory = {n}: {e}")))
                .ok(),
            SizeOrNumber::Text(t) => match size::parse_size(t) {
                Ok(0) => {
                    self.error(m.span(), "invalid max_memory: it must be larger than 0");
                    None
                }
                Ok(n) => Some(n),
                Err(e) => {
                    self.error(m.span(), e);
                    None
                }
            },
            SizeOrNumber::Number(n) => {
                self.error(
                    m.span(),
                    format!("invalid max_memory = {n}: expected a positive size"),
                );
                None
            }
        }
    }

    fn backlog(&mut self, raw: &RawService) -> i32 {
        match &raw.backlog {
            None => crate::net::DEFAULT_BACKLOG,
            Some(b) if (1..=maxima::MAX_BACKLOG as i64).contains(b.get_ref()) => {
                *b.get_ref() as i32
            }
            Some(b) => {
                self.error(
                    b.span(),
                    format!(
                        "invalid backlog = {}: expected a number from 1 to {}",
                        b.get_ref(),
                        maxima::MAX_BACKLOG
                    ),
                );
                1
            }
        }
    }

    /// What the workers become: `user`, `group` (or the daemon's default
    /// account), `chroot`, `limits`, and whether they may gain privileges.
    fn privileges(&mut self, raw: &RawService, default_account: Option<Account>) -> Privileges {
        let account = match (&raw.user, &raw.group) {
            (None, None) => default_account,
            (user, group) => self.account(user.as_ref(), group.as_ref()).flatten(),
        };
        let chroot = raw.chroot.as_ref().map(|c| PathBuf::from(c.get_ref()));
        if let (Some(dir), Some(raw_dir)) = (&chroot, &raw.chroot) {
            if !dir.is_absolute() || !dir.is_dir() {
                self.error(
                    raw_dir.span(),
                    format!(
                        "chroot '{}' is not an existing absolute directory",
                        dir.display()
                    ),
                );
            }
        }
        let limits = raw
            .limits
            .as_ref()
            .map(|l| self.limits(l.get_ref()))
            .unwrap_or_default();
        let allow_new_privileges = match &raw.allow_new_privileges {
            Some(allow) if *allow.get_ref() && raw.no_new_privs == Some(true) => {
                self.error(
                    allow.span(),
                    "allow_new_privileges = true contradicts no_new_privs = true",
                );
                false
            }
            Some(allow) => *allow.get_ref(),
            None => false,
        };
        Privileges {
            account,
            chroot,
            limits,
            no_new_privs: raw.no_new_privs.unwrap_or(false),
            allow_new_privileges,
        }
    }

    /// The keys a UDP builtin cannot honour, refused rather than ignored: a
    /// worker answers each datagram at once (`timeout`), in the memory it
    /// had when it started (`max_memory`), and logs no line per datagram
    /// (`log_connections`), which a flood of forged ones would turn into a
    /// flood of lines. (A UDP program is a wait service: see
    /// `ServiceConfig::check_wait`.)
    pub(super) fn not_for_udp(&mut self, raw: &RawService) {
        for (key, span) in [
            ("timeout", raw.timeout.as_ref().map(|t| t.span())),
            ("max_memory", raw.max_memory.as_ref().map(|m| m.span())),
            (
                "log_connections",
                raw.log_connections.as_ref().map(|l| l.span()),
            ),
        ] {
            if let Some(span) = span {
                self.error(
                    span,
                    format!("`{key}` applies to tcp services and programs, not a udp builtin (see preforkd(8), Over UDP)"),
                );
            }
        }
    }

    pub(super) fn sizing(&mut self, w: &Spanned<raw::RawWorkers>) -> Sizing {
        let sizing = match w.get_ref() {
            raw::RawWorkers::Count(n) if (1..=maxima::MAX_WORKERS as i64).contains(n) => {
                Ok(Sizing::Fixed(*n as usize))
            }
            raw::RawWorkers::Count(n) => Err(format!(
                "invalid workers = {n}: expected a number from 1 to {}",
                maxima::MAX_WORKERS
            )),
            raw::RawWorkers::Adaptive(t) => {
                let get = |v: Option<i64>| v.map(usize::try_from).transpose();
                match (get(t.start), get(t.min_spare), get(t.max_spare), get(t.max)) {
                    (Ok(start), Ok(min_spare), Ok(max_spare), Ok(max)) => {
                        Sizing::adaptive(start, min_spare, max_spare, max)
                            .map_err(|e| format!("invalid workers: {e}"))
                    }
                    _ => Err("invalid workers: numbers must not be negative".into()),
                }
            }
        };
        sizing.unwrap_or_else(|message| {
            self.error(w.span(), message);
            Sizing::Fixed(1)
        })
    }

    pub(super) fn socket_file(&mut self, raw: &RawService) -> (Option<u32>, Option<(u32, u32)>) {
        let mode = raw.socket_mode.as_ref().and_then(|m| {
            u32::from_str_radix(m.get_ref().trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .or_else(|| {
                    self.error(
                        m.span(),
                        format!(
                            "invalid socket_mode '{}': expected octal, as in \"0660\"",
                            m.get_ref()
                        ),
                    );
                    None
                })
        });
        let owner = raw.socket_owner.as_ref().and_then(|o| {
            let (user, group) = match o.get_ref().split_once([':', '.']) {
                Some((u, g)) => (u, Some(g)),
                None => (o.get_ref().as_str(), None),
            };
            Account::lookup(user, group)
                .map(|a| (a.uid, a.gid))
                .map_err(|e| self.error(o.span(), e))
                .ok()
        });
        (mode, owner)
    }
}
