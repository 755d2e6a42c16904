//! One check per rule. (Filled in by the conformance work; see the module docs.)

use super::{MultiCheck, SingleCheck};
use crate::Backend;

/// Every single-process check, with its name (`"r1_binary_flag"`, ...).
pub fn single_checks<B: Backend>() -> Vec<(&'static str, SingleCheck<B>)> {
    Vec::new()
}

/// Every check that needs a second process, with its name.
pub fn multi_checks<B: Backend>() -> Vec<(&'static str, MultiCheck<B>)> {
    Vec::new()
}
