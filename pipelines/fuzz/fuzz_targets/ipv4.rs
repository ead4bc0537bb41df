#![no_main]
//! IPv4 view and Repr: never panic; a parsed Repr re-emits to a header that parses equal.
use libfuzzer_sys::fuzz_target;
use pipelines::wire::ipv4::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (p.payload(), p.options(), p.verify_checksum(), p.is_fragment());
        if let Ok(repr) = Repr::parse(&p, false) {
            let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
            let mut out = Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut out);
            let back = Packet::new_checked(&buf[..]).expect("emitted header parses");
            assert_eq!(Repr::parse(&back, true).expect("emitted checksum verifies"), repr);
        }
    }
});
