//! The names of the server designs a service can run with (`model =`,
//! `--model`): what the config and the command line read. The designs
//! themselves are in the `models` module, which sits above the config.

use std::fmt;
use std::str::FromStr;

/// A serving strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Model {
    /// One process, one connection at a time.
    Iterative,
    /// One fork per connection (inetd's `nowait`).
    Fork,
    /// N processes, each blocking in accept(2) on the shared socket.
    #[default]
    Prefork,
    /// `prefork` whose workers poll(2) the shared socket before accept.
    PreforkPoll,
    /// `prefork` whose workers each wait in their own epoll instance.
    PreforkEpoll,
    /// `prefork-epoll` with EPOLLEXCLUSIVE.
    PreforkEpollExclusive,
    /// `prefork` with a file lock around accept(2).
    PreforkLock,
    /// `prefork` with a process-shared pthread mutex around accept(2).
    PreforkMutex,
    /// The parent accepts and passes each descriptor to an idle child.
    PreforkPass,
    /// A thread per connection.
    Threads,
    /// N threads, each blocking in accept(2).
    Pool,
    /// N threads taking turns in accept(2) under a mutex.
    PoolLock,
    /// The main thread accepts and hands each connection to a pool thread.
    PoolPass,
    /// One thread, non-blocking sockets, poll(2).
    Event,
    /// One SO_REUSEPORT socket per worker process.
    Reuseport,
}

/// Every model with its name, in the order of the chapter.
pub const MODELS: [(Model, &str); 15] = [
    (Model::Iterative, "iterative"),
    (Model::Fork, "fork"),
    (Model::Prefork, "prefork"),
    (Model::PreforkPoll, "prefork-poll"),
    (Model::PreforkEpoll, "prefork-epoll"),
    (Model::PreforkEpollExclusive, "prefork-epoll-exclusive"),
    (Model::PreforkLock, "prefork-lock"),
    (Model::PreforkMutex, "prefork-mutex"),
    (Model::PreforkPass, "prefork-pass"),
    (Model::Threads, "threads"),
    (Model::Pool, "pool"),
    (Model::PoolLock, "pool-lock"),
    (Model::PoolPass, "pool-pass"),
    (Model::Event, "event"),
    (Model::Reuseport, "reuseport"),
];

impl Model {
    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        MODELS
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("?", |(_, name)| name)
    }

    /// Run by the master's own workers, N processes that each accept.
    pub fn is_process_pool(self) -> bool {
        matches!(
            self,
            Model::Prefork
                | Model::PreforkPoll
                | Model::PreforkEpoll
                | Model::PreforkEpollExclusive
                | Model::PreforkLock
                | Model::PreforkMutex
                | Model::Reuseport
        )
    }

    /// Serves a builtin or an exec service only, not a library handler:
    /// its threads share the service, or its event loop drives it.
    pub fn needs_service(self) -> bool {
        matches!(
            self,
            Model::Threads | Model::Pool | Model::PoolLock | Model::PoolPass | Model::Event
        )
    }

    /// Makes use of a worker count (processes or threads).
    pub fn has_workers(self) -> bool {
        !matches!(
            self,
            Model::Iterative | Model::Fork | Model::Threads | Model::Event
        )
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModel(pub String);

impl fmt::Display for UnknownModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = MODELS.iter().map(|(_, n)| *n).collect();
        write!(
            f,
            "unknown model '{}' (expected one of: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownModel {}

impl FromStr for Model {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Model, UnknownModel> {
        MODELS
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(m, _)| *m)
            .ok_or_else(|| UnknownModel(s.to_string()))
    }
}
