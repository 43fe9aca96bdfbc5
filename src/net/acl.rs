//! Who may connect: the access lists (`only_from`, `no_access`), the
//! concurrent connections from one address (`per_source`), and the rate of
//! new connections (`rate`).
//!
//! A worker checks a client right after accept, before the handler runs;
//! a refused client is closed at once. A UDP worker checks each datagram
//! before it answers, with `per_source` meaning datagrams per second from
//! one address ([`UDP_PER_SOURCE`] unless set), kept in a [`SourceTable`]. The lists are pure; `per_source`
//! counts the busy slots of the scoreboard; `rate` is one shared atomic
//! word (the generic cell rate algorithm: a token bucket without a lock).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;

/// The largest count of a rate: a million per period.
pub const MAX_RATE: u32 = 1_000_000;

/// A rate of new connections: `50/s`, `600/m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Connections allowed per period.
    pub count: u32,
    /// The period, in seconds.
    pub per_secs: u32,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let bad = || {
            format!("invalid rate '{s}': expected a count per second or minute, as in \"50/s\" or \"600/m\"")
        };
        let (count, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(bad)?;
        if count > MAX_RATE {
            return Err(format!(
                "invalid rate '{s}': at most {} per period",
                MAX_RATE
            ));
        }
        let per_secs = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        Ok(Rate { count, per_secs })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per_secs {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Rate {
    /// Microseconds between two connections at this rate.
    fn interval_us(&self) -> u64 {
        (u64::from(self.per_secs) * 1_000_000 / u64::from(self.count)).max(1)
    }

    /// Whether one more connection fits, at `now_us` (a monotonic clock in
    /// microseconds), given the shared state word. A whole period's worth
    /// may arrive at once (the bucket holds `count` tokens); beyond that,
    /// one per interval.
    pub fn admit(&self, state: &AtomicU64, now_us: u64) -> bool {
        let interval = self.interval_us();
        let burst = interval * u64::from(self.count);
        let mut current = state.load(Ordering::SeqCst);
        loop {
            // The theoretical arrival time of the next connection: one
            // more fits if it is not later than a burst's worth ahead.
            let tat = current.max(now_us);
            if tat - now_us + interval > burst {
                return false;
            }
            match state.compare_exchange_weak(
                current,
                tat + interval,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

/// Datagrams per second a UDP service answers from one address when it
/// sets no `per_source` (a burst of as many, then one per 100 ms): echo and
/// chargen answer a forged source at most this fast, and a reply loop
/// between two servers ends at the first datagram dropped.
pub const UDP_PER_SOURCE: u32 = 10;

/// Sources the UDP limiter remembers, for all services together.
pub const SOURCES: usize = 4096;

/// The per-source limiter of UDP services: [`SOURCES`] entries of two
/// shared words (a key for the pool and the address, the rate's state),
/// direct-mapped by a hash whose key the master picks at random before the
/// first fork. Its memory is fixed, whatever the number of sources; a
/// sender cannot choose which entries its forged sources land on; a source
/// whose entry another took starts again with a full burst.
#[derive(Debug, Clone, Copy)]
pub struct SourceTable<'a> {
    words: &'a [AtomicU64],
    hasher: &'a RandomState,
}

impl<'a> SourceTable<'a> {
    /// A table over `words` (two per entry), keyed by `hasher`.
    pub fn new(words: &'a [AtomicU64], hasher: &'a RandomState) -> SourceTable<'a> {
        SourceTable { words, hasher }
    }

    /// Whether one more datagram from `ip`, for the pool whose shared slot
    /// is `pool`, fits `rate` at `now_us`. Lock-free: two workers racing on
    /// one entry may let one datagram too many through, never block.
    pub fn admit(&self, pool: usize, ip: IpAddr, rate: Rate, now_us: u64) -> bool {
        let entries = self.words.len() / 2;
        if entries == 0 {
            return true;
        }
        let key = self.hasher.hash_one((pool, ip.to_canonical())) | 1;
        let i = ((key >> 1) % entries as u64) as usize;
        let (owner, state) = (&self.words[2 * i], &self.words[2 * i + 1]);
        if owner.load(Ordering::SeqCst) != key {
            owner.store(key, Ordering::SeqCst);
            state.store(0, Ordering::SeqCst);
        }
        rate.admit(state, now_us)
    }
}

/// A service's access rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// If not empty, only these networks may connect.
    pub only_from: Vec<IpNet>,
    /// These networks may never connect (wins over `only_from`).
    pub no_access: Vec<IpNet>,
    /// At most this many concurrent connections from one address.
    pub per_source: Option<u32>,
    /// At most this many new connections per period, for each address the
    /// service listens on.
    pub rate: Option<Rate>,
}

/// Parses an access-list entry: a network (`10.0.0.0/8`, `fd00::/8`) or a
/// single address (`127.0.0.1`, `::1`).
///
/// A client is judged by its canonical address: an IPv4 client of a
/// dual-stack socket, `::ffff:a.b.c.d`, is `a.b.c.d`. So is an entry: one
/// written IPv4-mapped (`::ffff:10.0.0.0/104`) is the IPv4 network it maps
/// (`10.0.0.0/8`), else it would match no client at all, and a `no_access`
/// written so would let through the very clients it names. A mapped
/// network wider than the mapped range (shorter than /96) is refused.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let net = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "invalid network '{s}': expected an address or a network, as in 10.0.0.0/8 or ::1"
            )
        })?;
    let IpNet::V6(v6) = net else {
        return Ok(net);
    };
    // As written: the network of a prefix under /96 is no longer mapped.
    match v6.addr().to_ipv4_mapped() {
        Some(_) if v6.prefix_len() < 96 => Err(format!(
            "invalid network '{s}': an IPv4-mapped network needs a prefix of /96 or longer (::ffff:0.0.0.0/96 is every IPv4 address); write IPv4 networks as IPv4"
        )),
        Some(v4) => Ok(IpNet::V4(
            ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .expect("a prefix of 0 to 32")
                .trunc(),
        )),
        None => Ok(net),
    }
}

impl Access {
    /// Whether the rules say anything at all (a worker skips the checks
    /// otherwise).
    pub fn is_open(&self) -> bool {
        self.only_from.is_empty()
            && self.no_access.is_empty()
            && self.per_source.is_none()
            && self.rate.is_none()
    }

    /// The lists' verdict on `ip`: `Err` with the reason when refused.
    pub fn allows(&self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = ip.to_canonical();
        if self.no_access.iter().any(|n| n.contains(&ip)) {
            return Err("in no_access");
        }
        if !self.only_from.is_empty() && !self.only_from.iter().any(|n| n.contains(&ip)) {
            return Err("not in only_from");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_mapped_entry_is_the_ipv4_network_it_maps() {
        assert_eq!(parse_net("::ffff:10.0.0.0/104"), parse_net("10.0.0.0/8"));
        assert_eq!(parse_net("::ffff:10.1.2.3/104"), parse_net("10.0.0.0/8"));
        assert_eq!(parse_net("::ffff:127.0.0.1"), parse_net("127.0.0.1/32"));
        assert_eq!(parse_net("::ffff:0.0.0.0/96"), parse_net("0.0.0.0/0"));
        assert!(parse_net("::ffff:0.0.0.0/95").is_err());
        assert!(parse_net("::/0").is_ok_and(|n| matches!(n, IpNet::V6(_))));
        let a = Access {
            no_access: vec![parse_net("::ffff:127.0.0.1").unwrap()],
            ..Access::default()
        };
        assert!(a.allows("127.0.0.1".parse().unwrap()).is_err());
        assert!(a.allows("::ffff:127.0.0.1".parse().unwrap()).is_err());
        assert!(a.allows("127.0.0.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn lists() {
        let a = Access {
            only_from: vec![parse_net("127.0.0.0/8").unwrap(), parse_net("::1").unwrap()],
            no_access: vec![parse_net("127.0.0.3").unwrap()],
            ..Access::default()
        };
        assert_eq!(a.allows("127.0.0.2".parse().unwrap()), Ok(()));
        assert_eq!(a.allows("::ffff:127.0.0.2".parse().unwrap()), Ok(()));
        assert_eq!(a.allows("::1".parse().unwrap()), Ok(()));
        assert!(a.allows("127.0.0.3".parse().unwrap()).is_err());
        assert!(a.allows("10.0.0.1".parse().unwrap()).is_err());
        assert!(parse_net("300.0.0.1").is_err());
    }

    #[test]
    fn the_source_table_limits_each_address_in_fixed_memory() {
        let words: Vec<AtomicU64> = (0..2 * 64).map(|_| AtomicU64::new(0)).collect();
        let hasher = RandomState::new();
        let table = SourceTable::new(&words, &hasher);
        let rate = Rate {
            count: UDP_PER_SOURCE,
            per_secs: 1,
        };
        let t0 = 10_000_000;
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let admitted = (0..100).filter(|_| table.admit(0, a, rate, t0)).count();
        assert_eq!(admitted, UDP_PER_SOURCE as usize);
        // The same address written as IPv6 is the same source.
        assert!(!table.admit(0, "::ffff:192.0.2.1".parse().unwrap(), rate, t0));
        // 100 ms later: one more.
        assert!(table.admit(0, a, rate, t0 + 100_000));
        assert!(!table.admit(0, a, rate, t0 + 100_000));
        // Another pool is counted on its own. (Asked last: in 64 entries
        // it may share the first pool's entry, one time in 64, and then
        // takes it over, which would give the first pool a fresh burst.)
        assert!(table.admit(1, a, rate, t0 + 100_000));
        // A flood of sources never grows the table; each gets its burst.
        for n in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            assert!(table.admit(0, ip, rate, t0));
        }
        assert_eq!(words.len(), 128);
    }

    #[test]
    fn rate_admits_a_burst_of_one_period_then_one_per_interval() {
        let rate: Rate = "50/s".parse().unwrap();
        let state = AtomicU64::new(0);
        let t0 = 10_000_000;
        let admitted = (0..200).filter(|_| rate.admit(&state, t0)).count();
        assert_eq!(admitted, 50);
        // 100 ms later, 5 more.
        let later = (0..200)
            .filter(|_| rate.admit(&state, t0 + 100_000))
            .count();
        assert_eq!(later, 5);
        // A full bucket stays full a moment later: nothing was earned yet.
        let state = AtomicU64::new(0);
        assert_eq!((0..200).filter(|_| rate.admit(&state, t0)).count(), 50);
        assert!(!rate.admit(&state, t0 + 1));
        assert!(rate.admit(&state, t0 + 20_000));
        assert!("0/s".parse::<Rate>().is_err());
        assert!("5/d".parse::<Rate>().is_err());
        assert_eq!("600/m".parse::<Rate>().unwrap().to_string(), "600/m");
    }
}
