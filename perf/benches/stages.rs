//! Criterion micro-benchmarks, one per pipeline stage (issue "Kernel bypass", item 4): trailer
//! append and strip, PDU parsing, reorder insert and release, fragmentation and reassembly,
//! concatenation and disaggregation, checksums. Run: `cargo bench -p perf --bench stages`.
//! Numbers are per packet on this machine; compare only within one run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pipelines::buf::{BufPool, HeapPool};
use pipelines::flow::concat::{concatenate, disaggregate};
use pipelines::flow::fragment::{fragment_sdu, reassemble};
use pipelines::flow::reassembly::{ReassemblyConfig, Reassembler};
use pipelines::flow::reorder::{ReorderBuffer, ReorderConfig};
use pipelines::flow::seqnum::{FlowKey, Sn16};
use pipelines::mx::{add_trailer, strip_trailer, MxPdu, PduOptions};
use pipelines::wire::ipv4;
use pipelines::wire::mx_trailer::MxTrailer;
use pipelines::{HeapBuf, PacketBuf};

/// An IPv4/UDP packet of `len` bytes with a valid header checksum.
fn udp4(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len.max(28)];
    let total = v.len() as u16;
    v[0] = 0x45;
    v[2..4].copy_from_slice(&total.to_be_bytes());
    v[8] = 64;
    v[9] = 17;
    v[12..16].copy_from_slice(&[10, 0, 0, 1]);
    v[16..20].copy_from_slice(&[10, 0, 0, 2]);
    v[24..26].copy_from_slice(&(total - 20).to_be_bytes());
    ipv4::Packet::new_unchecked(&mut v[..]).fill_checksum();
    v
}

fn trailer(sn: u16) -> MxTrailer {
    MxTrailer {
        connection_id: Some(1),
        traffic_class: Some(0),
        sequence_number: Some(sn),
        ..Default::default()
    }
}

fn trailer_stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("trailer");
    g.throughput(Throughput::Elements(1));
    for size in [64usize, 512, 1500] {
        let sdu = udp4(size);
        let mut buf = HeapBuf::from_slice(&sdu);
        g.bench_function(format!("add+strip/{size}B"), |b| {
            b.iter(|| {
                add_trailer(&mut buf, &trailer(7), false).unwrap();
                let s = strip_trailer(&mut buf, PduOptions::default()).unwrap();
                black_box(s);
            })
        });
        let mut pdu = HeapBuf::from_slice(&sdu);
        add_trailer(&mut pdu, &trailer(9), false).unwrap();
        g.bench_function(format!("parse/{size}B"), |b| {
            b.iter(|| black_box(MxPdu::parse(black_box(pdu.data()), PduOptions::default()).unwrap().sdu_count))
        });
    }
    g.finish();
}

fn reorder_stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("reorder");
    g.throughput(Throughput::Elements(1024));
    g.bench_function("in-order/1024", |b| {
        let mut rb: ReorderBuffer<u32, Sn16> = ReorderBuffer::new(ReorderConfig::default());
        let mut sn: u16 = 0;
        b.iter(|| {
            let mut n = 0u32;
            for i in 0..1024u32 {
                rb.push(Sn16(sn), i, 0, |_, x| n = n.wrapping_add(x));
                sn = sn.wrapping_add(1);
            }
            black_box(n)
        })
    });
    g.bench_function("pairwise-swapped/1024", |b| {
        let mut rb: ReorderBuffer<u32, Sn16> = ReorderBuffer::new(ReorderConfig::default());
        let mut base: u16 = 0;
        b.iter(|| {
            let mut n = 0u32;
            for i in 0..512u16 {
                let a = base.wrapping_add(2 * i);
                rb.push(Sn16(a.wrapping_add(1)), 1, 0, |_, x| n += x);
                rb.push(Sn16(a), 1, 0, |_, x| n += x);
            }
            base = base.wrapping_add(1024);
            black_box(n)
        })
    });
    g.finish();
}

fn fragment_stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("fragment");
    g.throughput(Throughput::Elements(1));
    let sdu = udp4(1500);
    let mut pool = HeapPool::new(64, 64, 128, 2176);
    g.bench_function("fragment+reassemble/1500B-in-3", |b| {
        let mut reasm = Reassembler::new(ReassemblyConfig::default());
        let mut scratch = Vec::with_capacity(2048);
        let mut frags = Vec::with_capacity(8);
        let mut sn: u16 = 0;
        b.iter_batched(
            || HeapBuf::from_slice(&sdu),
            |buf| {
                sn = sn.wrapping_add(1);
                fragment_sdu(buf, 560, &trailer(sn), &mut pool, &mut frags).unwrap();
                let mut done = None;
                for mut f in frags.drain(..) {
                    let s = strip_trailer(&mut f, PduOptions::default()).unwrap();
                    let fc = s.fragment.unwrap();
                    let r = reassemble(&mut reasm, FlowKey::new(1, 1, 0), sn, fc, 17, f, 0, &mut pool, &mut scratch).unwrap();
                    if r.is_some() {
                        done = r;
                    }
                }
                let out = done.unwrap();
                let n = out.len();
                pool.free(out);
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn concat_stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("concat");
    g.throughput(Throughput::Elements(16));
    let sdu = udp4(64);
    let mut pool = HeapPool::new(256, 64, 128, 2176);
    g.bench_function("concatenate+disaggregate/16x64B", |b| {
        let mut sdus = Vec::with_capacity(16);
        let mut out = Vec::with_capacity(16);
        b.iter(|| {
            for _ in 0..16 {
                let mut x = pool.alloc().unwrap();
                x.extend_from_slice(&sdu);
                sdus.push(x);
            }
            let mut pdu = concatenate(&mut sdus, &trailer(15), false, &mut pool).unwrap();
            let s = strip_trailer(&mut pdu, PduOptions::default()).unwrap();
            disaggregate(pdu, s.sdu_count, &mut pool, &mut out).unwrap();
            let n = out.len();
            for x in out.drain(..) {
                pool.free(x);
            }
            black_box(n)
        })
    });
    g.finish();
}

fn checksum_stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    let data = udp4(1500);
    g.throughput(Throughput::Bytes(1500));
    g.bench_function("internet-checksum/1500B", |b| {
        b.iter(|| black_box(pipelines::wire::checksum::checksum(black_box(&data))))
    });
    g.finish();
}

criterion_group!(
    benches,
    trailer_stages,
    reorder_stages,
    fragment_stages,
    concat_stages,
    checksum_stages
);
criterion_main!(benches);
