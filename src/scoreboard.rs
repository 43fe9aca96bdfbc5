//! The scoreboard: one slot of shared memory per worker, written by the
//! worker, read by the master (for the pool's size, the timeouts, per_source
//! and `preforkd status`).
//!
//! A slot is sixteen 64-bit atomic words in a mapping made before the
//! first fork (see `sys::shm`); a worker's uses the first eight for its
//! state, client and counts, the other eight for what its handler says it
//! is doing (a seqlock: `note.rs`), a pool's
//! shared slot also holds the pool's [`Counter`]s, which outlive its
//! workers (the master adds what it knows, started and died young; the
//! workers what they see, refusals and bytes; a reaped worker's served
//! connections are folded in). The master hands out free slots and clears them
//! when it reaps a worker; a worker writes only its own. Nothing is locked,
//! so a worker killed in the middle of an update leaves at worst one stale
//! field, which the master overwrites when it frees the slot.

use std::collections::hash_map::RandomState;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::net::acl::{SourceTable, SOURCES};
use crate::sys::shm::{monotonic_ms, SharedWords};

mod note;

pub use note::{sanitize, NOTE_BYTES};

/// Slots in the board: the most workers of all pools together.
pub const MAX_SLOTS: usize = 4096;

const SLOT_WORDS: usize = 16;
const PID: usize = 0; // pid | generation << 32
const STATE: usize = 1;
const SERVED: usize = 2;
const SINCE: usize = 3; // monotonic ms when the current connection began
const IP_HIGH: usize = 4;
const IP_LOW: usize = 5;
const PORT: usize = 6; // port + 1 (0: no client address)
const POOL: usize = 7; // the pool's shared slot + 1
/// In a worker's slot: its handler's note, to the end of the slot.
const NOTE: usize = 8;

const _: () = assert!(NOTE + note::NOTE_WORDS == SLOT_WORDS);

/// In a pool's shared slot: the rate limiter's state.
const RATE: usize = 0;
/// In a pool's shared slot: which pool holds it (a number never reused).
const SERIAL: usize = 8;
/// In a pool's shared slot: the first [`Counter`] (then one word each).
const COUNTERS: usize = 9;

/// A pool's counters, in its shared slot: totals since the pool started.
/// (Its connections served are the `served` of its shared slot: those of
/// reaped workers, to which the live workers' own are added.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Workers forked (the master's).
    Started,
    /// Workers that died young or could not start (the master's).
    DiedYoung,
    /// Connections refused by only_from, no_access or per_source.
    RefusedRule,
    /// Connections refused by rate.
    RefusedRate,
    /// Connections refused for their PROXY protocol header.
    RefusedProxy,
    /// Bytes read from clients by handlers that read through `Connection`.
    BytesIn,
    /// Bytes written to clients by handlers that write through `Connection`.
    BytesOut,
}

const _: () = assert!(COUNTERS + (Counter::BytesOut as usize) < SLOT_WORDS);

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The slot is not in use.
    Free,
    /// Forked, not yet in accept.
    Starting,
    /// Waiting for a connection.
    Idle,
    /// Serving a connection.
    Busy,
    /// Told to stop; finishing.
    Exiting,
    /// Not a worker: a pool's shared counters.
    Shared,
}

impl State {
    fn from_word(w: u64) -> State {
        match w {
            1 => State::Starting,
            2 => State::Idle,
            3 => State::Busy,
            4 => State::Exiting,
            5 => State::Shared,
            _ => State::Free,
        }
    }

    fn word(self) -> u64 {
        match self {
            State::Free => 0,
            State::Starting => 1,
            State::Idle => 2,
            State::Busy => 3,
            State::Exiting => 4,
            State::Shared => 5,
        }
    }

    /// The name `status` shows.
    pub fn name(self) -> &'static str {
        match self {
            State::Free => "free",
            State::Starting => "starting",
            State::Idle => "idle",
            State::Busy => "busy",
            State::Exiting => "exiting",
            State::Shared => "shared",
        }
    }
}

/// The shared board and, on the master's side, which slots are free.
#[derive(Debug)]
pub struct Scoreboard {
    /// Shared with the [`OwnSlot`] a worker keeps of its own slot.
    words: Rc<SharedWords>,
    free: Vec<usize>,
    /// The UDP services' per-source limiter, and its hash key.
    sources: SharedWords,
    hasher: RandomState,
    /// The next pool's serial.
    serial: u64,
}

impl Scoreboard {
    /// Maps a board of [`MAX_SLOTS`] free slots.
    pub fn new() -> std::io::Result<Scoreboard> {
        Ok(Scoreboard {
            words: Rc::new(SharedWords::new(MAX_SLOTS * SLOT_WORDS)?),
            free: (0..MAX_SLOTS).rev().collect(),
            sources: SharedWords::new(2 * SOURCES)?,
            hasher: RandomState::new(),
            serial: 0,
        })
    }

    /// The UDP services' per-source limiter, shared by every worker.
    pub fn sources(&self) -> SourceTable<'_> {
        SourceTable::new(self.sources.words(), &self.hasher)
    }

    /// Takes a free slot for a worker about to be forked.
    pub fn allocate(&mut self, generation: u32) -> Option<usize> {
        let index = self.free.pop()?;
        let slot = self.slot(index);
        slot.clear();
        slot.w[PID].store(u64::from(generation) << 32, Ordering::SeqCst);
        slot.set(State::Starting);
        Some(index)
    }

    /// Takes a slot for a pool's shared counters (its rate limiter), with
    /// a serial no other pool of this board has.
    pub fn allocate_shared(&mut self) -> Option<usize> {
        let index = self.allocate(0)?;
        self.serial += 1;
        self.slot(index).w[SERIAL].store(self.serial, Ordering::SeqCst);
        self.slot(index).set(State::Shared);
        Some(index)
    }

    /// Whether `index` is still the shared slot of the pool with `serial`
    /// (a worker forked before a reload may ask about a pool since gone).
    pub fn is_pool(&self, index: usize, serial: u64) -> bool {
        index < MAX_SLOTS
            && self.slot(index).state() == State::Shared
            && self.serial(index) == serial
    }

    /// The serial of the pool whose shared slot is `index`.
    pub fn serial(&self, index: usize) -> u64 {
        self.slot(index).w[SERIAL].load(Ordering::SeqCst)
    }

    /// The live workers of the pool whose shared slot is `pool`: how many
    /// are busy, how many idle, and the connections they served.
    pub fn pool_workers(&self, pool: usize) -> (u64, u64, u64) {
        let tag = pool as u64 + 1;
        let (mut busy, mut idle, mut served) = (0, 0, 0);
        for w in self.words.words().chunks_exact(SLOT_WORDS) {
            if w[POOL].load(Ordering::Relaxed) != tag {
                continue;
            }
            match State::from_word(w[STATE].load(Ordering::Relaxed)) {
                State::Busy => busy += 1,
                State::Idle => idle += 1,
                _ => {}
            }
            served += w[SERVED].load(Ordering::Relaxed);
        }
        (busy, idle, served)
    }

    /// A reaped worker's connections served join its pool's total: its
    /// slot leaves the pool first, so that a reader never counts them
    /// twice (at worst once not at all, for an instant).
    pub fn fold_served(&self, index: usize, pool: usize) {
        let slot = self.slot(index);
        slot.w[POOL].store(0, Ordering::SeqCst);
        self.slot(pool).w[SERVED].fetch_add(slot.served(), Ordering::SeqCst);
    }

    /// Busy connections from `ip` in the pool whose shared slot is `pool`.
    pub fn busy_from(&self, pool: usize, ip: IpAddr) -> usize {
        let words = ip_words(ip);
        let tag = pool as u64 + 1;
        self.words
            .words()
            .chunks_exact(SLOT_WORDS)
            .filter(|w| {
                w[POOL].load(Ordering::Relaxed) == tag
                    && w[STATE].load(Ordering::Relaxed) == State::Busy.word()
                    && w[IP_HIGH].load(Ordering::Relaxed) == words.0
                    && w[IP_LOW].load(Ordering::Relaxed) == words.1
            })
            .count()
    }

    /// Gives a slot back (its worker was reaped, or never forked).
    pub fn release(&mut self, index: usize) {
        self.slot(index).clear();
        self.free.push(index);
    }

    /// The slot at `index`.
    pub fn slot(&self, index: usize) -> Slot<'_> {
        slot_of(&self.words, index)
    }

    /// The slot at `index`, held without borrowing the board: for a
    /// worker to keep its own where its handler can reach it.
    pub fn own_slot(&self, index: usize) -> OwnSlot {
        OwnSlot {
            words: Rc::clone(&self.words),
            index,
        }
    }
}

fn slot_of(words: &SharedWords, index: usize) -> Slot<'_> {
    Slot {
        w: &words.words()[index * SLOT_WORDS..(index + 1) * SLOT_WORDS],
    }
}

/// One slot of a board, owning its share of the mapping.
#[derive(Debug)]
pub struct OwnSlot {
    words: Rc<SharedWords>,
    index: usize,
}

impl OwnSlot {
    /// The slot.
    pub fn slot(&self) -> Slot<'_> {
        slot_of(&self.words, self.index)
    }
}

/// One worker's slot.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    w: &'a [AtomicU64],
}

impl Slot<'_> {
    fn clear(&self) {
        for word in self.w {
            word.store(0, Ordering::SeqCst);
        }
    }

    /// Records which pool the worker belongs to (by its shared slot).
    pub fn set_pool(&self, pool: usize) {
        self.w[POOL].store(pool as u64 + 1, Ordering::SeqCst);
    }

    /// Adds `n` to a pool's counter (in its shared slot).
    pub fn add(&self, counter: Counter, n: u64) {
        if n > 0 {
            self.w[COUNTERS + counter as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A pool's counter (in its shared slot).
    pub fn count(&self, counter: Counter) -> u64 {
        self.w[COUNTERS + counter as usize].load(Ordering::Relaxed)
    }

    /// The rate limiter's word, in a pool's shared slot.
    pub fn rate_state(&self) -> &AtomicU64 {
        &self.w[RATE]
    }

    /// Records the worker's pid (both sides of the fork do, so it is there
    /// whichever runs first).
    pub fn set_pid(&self, pid: u32) {
        let generation = self.w[PID].load(Ordering::SeqCst) & !0xffff_ffff;
        self.w[PID].store(generation | u64::from(pid), Ordering::SeqCst);
    }

    /// The worker's pid.
    pub fn pid(&self) -> u32 {
        self.w[PID].load(Ordering::SeqCst) as u32
    }

    /// The generation (reload count) the worker was forked in.
    pub fn generation(&self) -> u32 {
        (self.w[PID].load(Ordering::SeqCst) >> 32) as u32
    }

    /// Sets the state.
    pub fn set(&self, state: State) {
        self.w[STATE].store(state.word(), Ordering::SeqCst);
    }

    /// The state.
    pub fn state(&self) -> State {
        State::from_word(self.w[STATE].load(Ordering::SeqCst))
    }

    /// A connection from `client` begins.
    pub fn begin(&self, client: Option<SocketAddr>) {
        let (ip, port) = match client {
            Some(a) => (ip_words(a.ip()), u64::from(a.port()) + 1),
            None => ((0, 0), 0),
        };
        self.w[IP_HIGH].store(ip.0, Ordering::SeqCst);
        self.w[IP_LOW].store(ip.1, Ordering::SeqCst);
        self.w[PORT].store(port, Ordering::SeqCst);
        self.w[SINCE].store(monotonic_ms(), Ordering::SeqCst);
        self.clear_note();
        self.set(State::Busy);
    }

    /// The connection is over; back to idle.
    pub fn end(&self) {
        self.w[SERVED].fetch_add(1, Ordering::SeqCst);
        self.clear_note();
        self.set(State::Idle);
    }

    /// Records what the handler is doing (sanitized, at most
    /// [`NOTE_BYTES`] bytes): the worker's own slot only.
    pub fn set_note(&self, text: &str) {
        note::write(&self.w[NOTE..], text);
    }

    /// Forgets the handler's note.
    pub fn clear_note(&self) {
        if self.w[NOTE + 1].load(Ordering::Relaxed) != 0 {
            self.set_note("");
        }
    }

    /// What the handler said it is doing, sanitized again (the worker is
    /// not trusted); `None` if nothing, or if it is being rewritten.
    pub fn note(&self) -> Option<String> {
        note::read(&self.w[NOTE..])
    }

    /// Counts one connection served, without a change of state (the
    /// single-process models, whose threads share one slot).
    pub fn add_served(&self) {
        self.w[SERVED].fetch_add(1, Ordering::SeqCst);
    }

    /// The connection was refused at once (access rules): back to idle,
    /// not counted as served.
    pub fn end_refused(&self) {
        self.clear_note();
        self.set(State::Idle);
    }

    /// Connections served.
    pub fn served(&self) -> u64 {
        self.w[SERVED].load(Ordering::SeqCst)
    }

    /// The client of the current (or last) connection.
    pub fn client(&self) -> Option<SocketAddr> {
        let port = self.w[PORT].load(Ordering::SeqCst);
        if port == 0 {
            return None;
        }
        let high = self.w[IP_HIGH].load(Ordering::SeqCst);
        let low = self.w[IP_LOW].load(Ordering::SeqCst);
        let ip = Ipv6Addr::from((u128::from(high) << 64) | u128::from(low));
        Some(SocketAddr::new(ip.to_canonical(), (port - 1) as u16))
    }

    /// How long the current connection has lasted, in milliseconds (0 when
    /// not busy).
    pub fn busy_for_ms(&self) -> u64 {
        if self.state() != State::Busy {
            return 0;
        }
        monotonic_ms().saturating_sub(self.w[SINCE].load(Ordering::SeqCst))
    }
}

fn ip_words(ip: IpAddr) -> (u64, u64) {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let bits = u128::from(v6);
    ((bits >> 64) as u64, bits as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_round_trips_and_is_shared_with_a_child() {
        let mut board = Scoreboard::new().unwrap();
        let i = board.allocate(7).unwrap();
        let slot = board.slot(i);
        slot.set_pid(1234);
        assert_eq!(
            (slot.pid(), slot.generation(), slot.state()),
            (1234, 7, State::Starting)
        );
        slot.begin(Some("127.0.0.5:4321".parse().unwrap()));
        assert_eq!(slot.state(), State::Busy);
        assert_eq!(slot.client(), Some("127.0.0.5:4321".parse().unwrap()));
        slot.end();
        assert_eq!((slot.state(), slot.served()), (State::Idle, 1));
        board.release(i);
        assert_eq!(board.slot(i).state(), State::Free);
        assert_eq!(board.allocate(1), Some(i));
    }

    #[test]
    fn a_note_is_cleared_as_a_connection_begins_and_ends_and_with_its_slot() {
        let mut board = Scoreboard::new().unwrap();
        let i = board.allocate(1).unwrap();
        let own = board.own_slot(i);
        own.slot().set_note("warming up");
        board.slot(i).begin(None);
        assert_eq!(board.slot(i).note(), None);
        own.slot().set_note("GET /a\x1b[0m");
        assert_eq!(board.slot(i).note().as_deref(), Some("GET /a?[0m"));
        board.slot(i).end();
        assert_eq!(board.slot(i).note(), None);
        own.slot().set_note("left behind by a killed worker");
        board.release(i);
        assert_eq!(board.slot(i).note(), None);
        // The words after the note's are the next slot's: untouched.
        assert_eq!(board.slot(i + 1).state(), State::Free);
    }
}
