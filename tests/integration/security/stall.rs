//! (tests of this defence: see docs/security.md)
