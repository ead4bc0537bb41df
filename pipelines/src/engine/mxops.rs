//! Thin seam to the fragmentation and concatenation stages (`flow::fragment`,
//! `flow::concat`), so the engine names them in one place.

pub(crate) use crate::flow::concat::{concatenate, disaggregate, fits, trailer_len};
pub(crate) use crate::flow::fragment::{fragment_sdu, reassemble};
