//! Filled in by the real-backend work.
