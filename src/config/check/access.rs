//! A service's access rules (`only_from`, `no_access`, `per_source`,
//! `rate`) and its PROXY protocol settings.

use toml::Spanned;

use crate::config::maxima;
use crate::config::raw::RawService;

use super::Checker;
use crate::net::acl::{Access, Rate};
use crate::net::proxy::{Proxy, ProxyVersion};

impl Checker<'_> {
    /// `proxy_protocol`, `trusted_proxies` and `proxy_timeout`: the first
    /// needs the second, and the others mean nothing without the first.
    pub(super) fn proxy(&mut self, raw: &RawService) -> Option<Proxy> {
        let Some(p) = &raw.proxy_protocol else {
            for (key, span) in [
                (
                    "trusted_proxies",
                    raw.trusted_proxies.as_ref().map(|t| t.span()),
                ),
                (
                    "proxy_timeout",
                    raw.proxy_timeout.as_ref().map(|t| t.span()),
                ),
            ] {
                if let Some(span) = span {
                    self.error(span, format!("`{key}` applies only with proxy_protocol"));
                }
            }
            return None;
        };
        let version = p
            .get_ref()
            .parse::<ProxyVersion>()
            .map_err(|e| self.error(p.span(), e))
            .ok();
        let mut trusted = Vec::new();
        match &raw.trusted_proxies {
            None => self.error(
                p.span(),
                "proxy_protocol needs trusted_proxies = [\"NET\", ...]: the load balancers whose headers are believed",
            ),
            Some(list) if list.get_ref().is_empty() => self.error(
                list.span(),
                "trusted_proxies is empty: name the load balancers whose headers are believed",
            ),
            Some(list) => {
                for entry in list.get_ref() {
                    match crate::net::acl::parse_net(entry.get_ref()) {
                        Ok(n) => trusted.push(n),
                        Err(e) => self.error(entry.span(), e),
                    }
                }
            }
        }
        let timeout = match &raw.proxy_timeout {
            None => Some(crate::net::proxy::DEFAULT_TIMEOUT),
            Some(t) => self.duration(t).and_then(|d| {
                let max = crate::net::proxy::MAX_TIMEOUT;
                if d.is_zero() || d > max {
                    self.error(
                        t.span(),
                        format!(
                            "invalid proxy_timeout: expected more than 0s and at most {}s",
                            max.as_secs()
                        ),
                    );
                    return None;
                }
                Some(d)
            }),
        };
        Some(Proxy {
            version: version?,
            trusted,
            timeout: timeout?,
        })
    }

    pub(super) fn access(&mut self, raw: &RawService) -> Access {
        let mut nets = |list: &Option<Vec<Spanned<String>>>| -> Vec<ipnet::IpNet> {
            let mut out = Vec::new();
            for entry in list.iter().flatten() {
                match crate::net::acl::parse_net(entry.get_ref()) {
                    Ok(n) => out.push(n),
                    Err(e) => self.error(entry.span(), e),
                }
            }
            out
        };
        let only_from = nets(&raw.only_from);
        let no_access = nets(&raw.no_access);
        let per_source = raw
            .per_source
            .as_ref()
            .and_then(|p| match u32::try_from(*p.get_ref()) {
                Ok(n) if n > 0 && u64::from(n) <= maxima::MAX_PER_SOURCE => Some(n),
                _ => {
                    self.error(
                        p.span(),
                        format!(
                            "invalid per_source = {}: expected a number from 1 to {}",
                            p.get_ref(),
                            maxima::MAX_PER_SOURCE
                        ),
                    );
                    None
                }
            });
        let rate = raw.rate.as_ref().and_then(|r| {
            r.get_ref()
                .parse::<Rate>()
                .map_err(|e| self.error(r.span(), e))
                .ok()
        });
        Access {
            only_from,
            no_access,
            per_source,
            rate,
        }
    }
}
