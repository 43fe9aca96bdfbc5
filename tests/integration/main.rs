//! Integration tests: every test starts the real `preforkd` binary on
//! loopback with port 0, talks to it over real sockets, signals it, and
//! looks at its processes in /proc.

mod builtin;
mod check;
mod control;
mod daemon;
mod docs;
mod errors;
mod exec;
mod import;
mod library;
mod library_examples;
mod library_hooks;
mod library_knobs;
mod library_state;
mod limits;
mod load;
mod log_level;
mod metrics;
mod models;
mod packaging;
mod pool;
mod proxy;
mod reliability;
mod reload;
mod run;
mod security;
mod serve;
mod stop;
mod supervise;
mod upgrade;
mod util;
mod wait;
mod work;
