//! Filled in by the C-shim work.
