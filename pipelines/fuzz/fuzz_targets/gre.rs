#![no_main]
//! GRE (RFC 2784/2890, draft-04 §4.4): never panic.
use libfuzzer_sys::fuzz_target;
use pipelines::wire::gre::{anchor_connection_id, Packet, Repr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (p.payload(), p.verify_checksum());
        if let Ok(r) = Repr::parse(&p) {
            let _ = r.key.map(anchor_connection_id);
            assert_eq!(r.header_len(), p.header_len());
        }
        let _ = Repr::parse_mams(&p);
    }
});
