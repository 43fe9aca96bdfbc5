//! The typed configuration: for now, the value syntaxes shared by the
//! command line and (later) the config file.

pub mod duration;
