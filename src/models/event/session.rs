//! One connection of the event model: a builtin written as a state
//! machine, advanced by [`Session::step`] whenever its socket is ready and
//! by [`Session::wake`] when its timer (`work`'s sleep) is due.

use std::io::{self, Read, Write};
use std::time::Instant;

use super::readiness::Interest;
use crate::net::Connection;
use crate::service::builtin::work::{burn_cpu, Line, WorkLine, WorkSend};
use crate::service::builtin::{daytime_text, time_since_1900, WorkSpec};
use crate::service::Builtin;

/// What a builtin connection is doing.
enum Kind {
    /// Reading; `pending` is what was read and not yet sent back; `eof`
    /// once the client has finished sending.
    Echo { pending: Vec<u8>, eof: bool },
    /// Reading and throwing away.
    Discard,
    /// Sending the cycle from `at`, until the client leaves.
    Chargen { at: usize },
    /// Sending one answer from `at`, then closing (daytime, time).
    Answer { data: Vec<u8>, at: usize },
    /// `work`, reading its request line.
    WorkRead(WorkLine),
    /// `work`, waiting for its timer before it answers.
    WorkSleep { until: Instant, send: WorkSend },
    /// `work`, answering.
    WorkSend(WorkSend),
}

/// A connection and where its builtin stands.
pub(super) struct Session {
    pub conn: Connection,
    kind: Kind,
    /// Last progress, for the idle timeout.
    pub last: Instant,
    /// What the readiness backend watches it for now.
    pub watched: Interest,
}

/// What a step of a session asks for next.
pub(super) enum Next {
    /// Wait for the socket (what [`Session::interest`] says).
    Wait,
    /// Wait for the timer, due then (the socket is not watched meanwhile).
    Sleep(Instant),
    /// Done: close it.
    Close,
}

/// Echo keeps at most this much buffer between bursts; more is given back.
const ECHO_KEPT: usize = 4096;

impl Session {
    pub fn new(conn: Connection, builtin: Builtin) -> Session {
        let kind = match builtin {
            Builtin::Echo => Kind::Echo {
                pending: Vec::new(),
                eof: false,
            },
            Builtin::Discard => Kind::Discard,
            Builtin::Chargen => Kind::Chargen { at: 0 },
            Builtin::Daytime => Kind::Answer {
                data: daytime_text().into_bytes(),
                at: 0,
            },
            Builtin::Time => Kind::Answer {
                data: time_since_1900().to_be_bytes().to_vec(),
                at: 0,
            },
            Builtin::Work(_) => Kind::WorkRead(WorkLine::default()),
            // Refused for this model by the config's checks.
            Builtin::Metrics => Kind::Discard,
        };
        let mut session = Session {
            conn,
            kind,
            last: Instant::now(),
            watched: Interest::Nothing,
        };
        session.watched = session.interest();
        session
    }

    /// What the session's socket must be watched for now.
    pub fn interest(&self) -> Interest {
        match &self.kind {
            Kind::Echo { pending, .. } if !pending.is_empty() => Interest::Write,
            Kind::Echo { .. } | Kind::Discard | Kind::WorkRead(_) => Interest::Read,
            Kind::Chargen { .. } | Kind::Answer { .. } | Kind::WorkSend(_) => Interest::Write,
            Kind::WorkSleep { .. } => Interest::Nothing,
        }
    }

    /// Whether it waits for its timer, not for the client (the idle
    /// timeout does not apply).
    pub fn sleeping(&self) -> bool {
        matches!(self.kind, Kind::WorkSleep { .. })
    }

    /// Its timer is due (or a stale one fired, `until` being later):
    /// whether it now answers.
    pub fn wake(&mut self, now: Instant) -> bool {
        match self.kind {
            Kind::WorkSleep { until, send } if until <= now => {
                self.kind = Kind::WorkSend(send);
                self.last = now;
                true
            }
            _ => false,
        }
    }

    /// Does what can be done without blocking; returns what comes next.
    /// `cycle` is chargen's, `buf` the loop's read buffer, `work` the
    /// parameters of a `work` service.
    pub fn step(&mut self, cycle: &[u8], buf: &mut [u8], work: &WorkSpec) -> io::Result<Next> {
        let conn = &mut self.conn;
        let next = match &mut self.kind {
            Kind::Echo { pending, eof } => {
                if pending.is_empty() && !*eof {
                    match conn.read(buf)? {
                        0 => *eof = true,
                        n => pending.extend_from_slice(&buf[..n]),
                    }
                }
                if !pending.is_empty() {
                    let n = conn.write(pending)?;
                    pending.drain(..n);
                    if pending.is_empty() && pending.capacity() > ECHO_KEPT {
                        *pending = Vec::new();
                    }
                }
                if pending.is_empty() && *eof {
                    Next::Close
                } else {
                    Next::Wait
                }
            }
            Kind::Discard => match conn.read(buf)? {
                0 => Next::Close,
                _ => Next::Wait,
            },
            Kind::Chargen { at } => {
                let n = conn.write(&cycle[*at..])?;
                *at = (*at + n) % cycle.len();
                Next::Wait
            }
            Kind::Answer { data, at } => {
                *at += conn.write(&data[*at..])?;
                if *at == data.len() {
                    Next::Close
                } else {
                    Next::Wait
                }
            }
            Kind::WorkRead(line) => match line.read_from(conn, work.max)? {
                Line::More => Next::Wait,
                Line::Close => Next::Close,
                Line::Asked(bytes) => {
                    // CPU is CPU: the loop cannot do it later, only here.
                    burn_cpu(work.cpu);
                    let send = WorkSend::new(bytes);
                    if work.sleep.is_zero() {
                        self.kind = Kind::WorkSend(send);
                        Next::Wait
                    } else {
                        let until = crate::sys::time::after(Instant::now(), work.sleep);
                        self.kind = Kind::WorkSleep { until, send };
                        Next::Sleep(until)
                    }
                }
            },
            // Only a hang-up or an error is reported while it sleeps.
            Kind::WorkSleep { .. } => Next::Close,
            Kind::WorkSend(send) => {
                if send.write_to(conn)? {
                    Next::Close
                } else {
                    Next::Wait
                }
            }
        };
        self.last = Instant::now();
        Ok(next)
    }
}

/// The sessions, each in a slot whose index is its token for the readiness
/// backend; a closed session's slot is taken again by the next one.
#[derive(Default)]
pub(super) struct Sessions {
    slots: Vec<Option<Session>>,
    free: Vec<usize>,
    live: usize,
}

impl Sessions {
    /// The slot the next `insert` takes.
    pub fn next_slot(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    /// Stores `session`: returns its slot.
    pub fn insert(&mut self, session: Session) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(session);
                i
            }
            None => {
                self.slots.push(Some(session));
                self.slots.len() - 1
            }
        }
    }

    /// Takes the session out of slot `i`, if one is there.
    pub fn remove(&mut self, i: usize) -> Option<Session> {
        let session = self.slots.get_mut(i)?.take()?;
        self.live -= 1;
        self.free.push(i);
        Some(session)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Session> {
        self.slots.get_mut(i)?.as_mut()
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every open session, with its slot.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Session)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }
}
