//! `bundle::decode` (and so `validate`) on arbitrary bytes, twice: as given, and with the header's
//! length and CRC-32 rewritten to match the payload, so that mutations reach the payload decoder
//! instead of stopping at the checksum. Neither may panic, and neither may have more than twice
//! the input plus a constant allocated at once. A bundle that decodes must validate and re-encode
//! to a file that decodes to the same bundle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mclr_shared::bundle::{self, HEADER_LEN};

#[global_allocator]
static ALLOC: mclr_fuzz::Tracking = mclr_fuzz::Tracking;

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= HEADER_LEN {
        let mut fixed = data.to_vec();
        let payload_len = (data.len() - HEADER_LEN) as u64;
        let crc = crc32fast_hash(&data[HEADER_LEN..]);
        fixed[12..20].copy_from_slice(&payload_len.to_le_bytes());
        fixed[20..24].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});

fn check(bytes: &[u8]) {
    let (decoded, peak) = mclr_fuzz::measure(|| bundle::decode(bytes));
    assert!(
        peak <= mclr_fuzz::allowance(bytes.len()),
        "decoding {} bytes had {peak} bytes allocated at once",
        bytes.len()
    );
    if let Ok(b) = decoded {
        bundle::validate(&b).expect("a decoded bundle validates");
        let again = bundle::encode(&b).expect("a decoded bundle re-encodes");
        assert_eq!(bundle::decode(&again).expect("and decodes again"), b);
    }
}

/// CRC-32 (IEEE), as the header stores it.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
