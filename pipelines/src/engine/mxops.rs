//! Thin seam to the fragmentation and concatenation stages (`flow::fragment`,
//! `flow::concat`), so the engine names them in one place.
//!
//! TEMPORARY: stubs until flow::fragment / flow::concat land on main.
#![allow(
    dead_code,
    unused_variables,
    clippy::too_many_arguments,
    clippy::ptr_arg
)]

use crate::buf::{BufPool, PacketBuf};
use crate::drop::DropReason;
use crate::flow::reassembly::Reassembler;
use crate::flow::seqnum::FlowKey;
use crate::flow::Instant;
use crate::wire::mx_trailer::{FragmentControl, MxTrailer};

pub(crate) fn fits(
    pdu_payload_len: usize,
    sdu_len: usize,
    trailer_len: usize,
    max_pdu_len: usize,
) -> bool {
    pdu_payload_len + sdu_len + trailer_len <= max_pdu_len
}

pub(crate) fn concatenate<B: PacketBuf>(
    sdus: &mut Vec<B>,
    trailer: &MxTrailer,
    header_optimization: bool,
    pool: &mut dyn BufPool<B>,
) -> Result<B, DropReason> {
    for b in sdus.drain(..) {
        pool.free(b);
    }
    Err(DropReason::MxConcatLength)
}

pub(crate) fn disaggregate<B: PacketBuf>(
    buf: B,
    sdu_count: usize,
    pool: &mut dyn BufPool<B>,
    out: &mut Vec<B>,
) -> Result<usize, DropReason> {
    pool.free(buf);
    Err(DropReason::MxConcatLength)
}

pub(crate) fn fragment_sdu<B: PacketBuf>(
    sdu: B,
    max_pdu_len: usize,
    trailer: &MxTrailer,
    pool: &mut dyn BufPool<B>,
    out: &mut Vec<B>,
) -> Result<usize, DropReason> {
    pool.free(sdu);
    Err(DropReason::MxFragment)
}

pub(crate) fn reassemble<B: PacketBuf>(
    reasm: &mut Reassembler,
    key: FlowKey,
    sn: u16,
    fc: FragmentControl,
    next_header: u8,
    frag: B,
    now: Instant,
    pool: &mut dyn BufPool<B>,
    scratch: &mut Vec<u8>,
) -> Result<Option<B>, DropReason> {
    pool.free(frag);
    Err(DropReason::MxFragment)
}
