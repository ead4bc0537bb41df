#![no_main]
//! MX trailer (draft-04 §4.2.1): never panic; whatever parses re-emits to the same bytes.
use libfuzzer_sys::fuzz_target;
use pipelines::wire::mx_trailer::{MxTrailer, Trailer, TrailerFields};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = MxTrailer::parse(data) {
        let len = t.buffer_len();
        assert!(len <= data.len());
        let mut out = vec![0u8; len];
        t.emit(&mut out);
        // Reserved flag bits are ignored on receipt and sent as zero.
        let tail = &data[data.len() - len..];
        assert_eq!(&out[..len - 1], &tail[..len - 1]);
        assert_eq!(out[len - 1], tail[len - 1] & !0x03);
        assert_eq!(MxTrailer::parse(&out).unwrap(), t);
        if let Some(&f) = data.first() {
            let _ = TrailerFields::new(f).check(&t);
        }
    }
    if let Ok(v) = Trailer::new_checked(data) {
        let _ = (v.payload(), v.sequence_number(), v.fragment_control());
    }
});
