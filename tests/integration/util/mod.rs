//! The harness the integration tests share: start the real binary, read
//! its `listening on` line, poll /proc with deadlines, and explain a
//! failure with everything it saw. Every test file takes it whole (`use
//! crate::util::*`), so each part is re-exported here.
//!
//! Here lives only what more than one test file uses, or what the harness
//! itself needs; a helper of one file stays in that file.

mod daemon;
mod files;
mod load;
mod net;
mod procfs;
mod program;
mod run;
mod skip;
mod wait;

pub use daemon::*;
pub use files::*;
pub use load::*;
pub use net::*;
pub use procfs::*;
pub use program::*;
pub use run::*;
pub use skip::*;
pub use wait::*;

/// The binary under test, built by cargo for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_preforkd");
