//! Wire formats, smoltcp-style: per protocol a zero-copy `Packet<T: AsRef<[u8]>>` view whose
//! accessors never panic once `new_checked` has passed, and a validated `Repr` that `emit`s
//! itself. One file per protocol.

pub mod checksum;
pub mod gre;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mx_control;
pub mod mx_trailer;
pub mod udp;

use crate::drop::DropReason;

/// A parse failure: why (also the drop-counter index), which field, and at which byte offset of
/// the input given to the parser that failed (callers parsing nested layers add their base with
/// [`Error::shifted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    pub reason: DropReason,
    pub field: &'static str,
    pub offset: usize,
}

impl Error {
    pub const fn new(reason: DropReason, field: &'static str, offset: usize) -> Self {
        Error {
            reason,
            field,
            offset,
        }
    }

    /// The same error, with its offset moved by `base` bytes (the start of the inner layer).
    pub const fn shifted(self, base: usize) -> Self {
        Error {
            offset: self.offset + base,
            ..self
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (field `{}` at byte offset {})",
            self.reason, self.field, self.offset
        )
    }
}

impl std::error::Error for Error {}

/// Result of a parse.
pub type Result<T> = core::result::Result<T, Error>;
