#![no_main]
//! Whole MX data PDUs (draft-04 §4.2): layout parsing and trailer stripping never panic, SDU
//! spans tile the payload, and a failed strip leaves the buffer untouched. The first input byte
//! chooses the options.
use libfuzzer_sys::fuzz_target;
use pipelines::mx::{strip_trailer, MxPdu, PduOptions};
use pipelines::wire::mx_trailer::TrailerFields;
use pipelines::{HeapBuf, PacketBuf};

fuzz_target!(|input: &[u8]| {
    let Some((&sel, data)) = input.split_first() else { return };
    let opts = PduOptions {
        header_optimization: sel & 1 != 0,
        trailer_fields: (sel & 2 != 0).then(|| TrailerFields::new(sel & 0xfc)),
    };
    if let Ok(pdu) = MxPdu::parse(data, opts) {
        let mut end = 0;
        for s in pdu.sdus() {
            assert_eq!(s.offset, end);
            end += s.len;
        }
        if pdu.fragment().is_none() {
            assert_eq!(end, pdu.payload_len);
        }
    }
    let mut buf = HeapBuf::from_slice(data);
    let before = buf.clone();
    match strip_trailer(&mut buf, opts) {
        Ok(s) => {
            if s.fragment.is_none() {
                // What is left is s.sdu_count IP packets back to back.
                let mut at = 0;
                for _ in 0..s.sdu_count {
                    at += pipelines::wire::ip::packet_len(&buf.data()[at..]).expect("restored SDU");
                }
                assert_eq!(at, buf.len());
            }
        }
        Err(_) => assert_eq!(buf, before),
    }
});
