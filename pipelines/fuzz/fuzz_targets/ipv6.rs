#![no_main]
//! IPv6 view and extension-header walk: never panic; the walk stays inside the packet.
use libfuzzer_sys::fuzz_target;
use pipelines::wire::ipv6::Packet;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::new_checked(data) {
        let _ = p.payload();
        if let Ok(u) = p.upper_layer() {
            assert!(u.offset <= p.total_len());
            assert!(u.next_header_field_offset < u.offset.max(7));
        }
    }
});
