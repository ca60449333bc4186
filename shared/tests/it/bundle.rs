//! The `.mclr` bundle format: round trips, the frozen v1 golden fixture, and one test per way a
//! file can be wrong, each checking the exact typed error.
//!
//! Headers are built and parsed here from the documented layout rather than with the crate's
//! code, so that a change to the layout fails these tests instead of silently moving with them.
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

use mclr_shared::Error;
use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};
use mclr_shared::bundle::{
    self, ArrayBlob, Bundle, DEFAULT_MAX_PAYLOAD_BYTES, DType, Dim, FORMAT_VERSION, HEADER_LEN,
    ImageFormat, LinearWeights, MAGIC, RunRecord, SUPPORTED_VERSIONS, TrainingLog, WIRE_CONFIG,
    WeightPrecision, limits,
};

// ---------------------------------------------------------------------------------------------
// Allocation probe: records the largest single allocation request in this test process, so that
// "rejected without allocating" is observed rather than assumed. Other tests in this binary
// allocate at most a few MB, far below the thresholds asserted.

/// The system allocator, recording the largest request.
struct LargestAllocation;

/// Largest allocation (or reallocation) size requested so far, in bytes.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// Opt-out of `unsafe_code = "deny"`: implementing `GlobalAlloc` is necessarily unsafe, and this
// only forwards to `System` after recording the size.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// No test here legitimately allocates this much at once.
const LARGE_ALLOCATION: usize = 64 << 20;

fn assert_no_large_allocation() {
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < LARGE_ALLOCATION,
        "something allocated {largest} bytes at once"
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The golden fixture of the current format version (v3).
const GOLDEN: &[u8] = include_bytes!("../golden/bundle_v3.mclr");
/// The frozen fixture of format v2 (no sheet file name, no run record), which must keep opening.
const GOLDEN_V2: &[u8] = include_bytes!("../golden/bundle_v2.mclr");
/// The frozen fixture of format v1 (f32-only MLP weights), which must keep opening.
const GOLDEN_V1: &[u8] = include_bytes!("../golden/bundle_v1.mclr");

/// A header written from the documented layout: magic, u32 version, u64 length, u32 CRC, all LE.
fn header(version: u32, payload_len: u64, crc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&[0x89, b'M', b'C', b'L', b'R', b'\r', b'\n', 0x1a]);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A complete file around `payload`, with a correct length and CRC.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut file = header(
        FORMAT_VERSION,
        payload.len() as u64,
        crc32fast::hash(payload),
    );
    file.extend_from_slice(payload);
    file
}

/// The payload of `bundle` as bincode writes it, without the validation `encode` does.
fn raw_payload(bundle: &Bundle) -> Vec<u8> {
    bincode::serde::encode_to_vec(bundle, WIRE_CONFIG).unwrap()
}

fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    bincode::serde::encode_to_vec(value, WIRE_CONFIG)
        .unwrap()
        .len()
}

/// Where each section ends in the payload, computed by encoding the fields one by one.
fn section_ends(bundle: &Bundle) -> Vec<(&'static str, usize)> {
    let sizes = [
        ("metadata", encoded_len(&bundle.metadata)),
        ("operators", encoded_len(&bundle.operators)),
        ("prior", encoded_len(&bundle.prior)),
        ("encoder", encoded_len(&bundle.encoder)),
        ("gallery", encoded_len(&bundle.gallery)),
        ("thumbnails", encoded_len(&bundle.thumbnails)),
        ("pca", encoded_len(&bundle.pca)),
        ("stats", encoded_len(&bundle.stats)),
        ("run", encoded_len(&bundle.run)),
    ];
    let mut end = 0;
    sizes
        .into_iter()
        .map(|(name, len)| {
            end += len;
            (name, end)
        })
        .collect()
}

fn golden() -> Bundle {
    bundle::decode(GOLDEN).unwrap()
}

fn small() -> Bundle {
    synthetic_bundle(&SyntheticSpec::default()).unwrap()
}

fn set_f32(array: &mut ArrayBlob, index: usize, value: f32) {
    assert_eq!(array.dtype, DType::F32);
    array.data[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes());
}

/// Adler-32 the slow, obvious way (the oracle for the PNG encoder's fast one).
fn adler32_reference(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1_u32, 0_u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// A PNG decoded by hand: dimensions, the raw (unfiltered) scanlines, and the number of stored
/// deflate blocks. Asserts every structural rule on the way.
struct DecodedPng {
    width: u32,
    height: u32,
    scanlines: Vec<u8>,
    stored_blocks: usize,
}

fn decode_png(png: &[u8]) -> DecodedPng {
    assert_eq!(
        &png[..8],
        &[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']
    );
    let mut pos = 8;
    let mut chunks = Vec::new();
    while pos < png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = png[pos + 4..pos + 8].try_into().unwrap();
        let data = &png[pos + 8..pos + 8 + len];
        let crc = u32::from_be_bytes(png[pos + 8 + len..pos + 12 + len].try_into().unwrap());
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&kind);
        hasher.update(data);
        assert_eq!(crc, hasher.finalize(), "CRC of chunk {:?}", kind);
        chunks.push((kind, data));
        pos += 12 + len;
    }
    assert_eq!(pos, png.len(), "bytes after the last chunk");
    let kinds: Vec<&[u8; 4]> = chunks.iter().map(|(k, _)| k).collect();
    assert_eq!(kinds.first(), Some(&b"IHDR"));
    assert_eq!(kinds.last(), Some(&b"IEND"));
    let ihdr = chunks[0].1;
    assert_eq!(ihdr.len(), 13);
    let width = u32::from_be_bytes(ihdr[0..4].try_into().unwrap());
    let height = u32::from_be_bytes(ihdr[4..8].try_into().unwrap());
    assert_eq!(&ihdr[8..], &[8, 2, 0, 0, 0], "8-bit RGB, no interlace");

    let zlib: Vec<u8> = chunks
        .iter()
        .filter(|(k, _)| k == b"IDAT")
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    let (cmf, flg) = (zlib[0], zlib[1]);
    assert_eq!(cmf & 0x0f, 8, "deflate");
    assert_eq!(
        (u16::from(cmf) * 256 + u16::from(flg)) % 31,
        0,
        "zlib header check"
    );
    assert_eq!(flg & 0x20, 0, "no preset dictionary");
    let mut pos = 2;
    let mut scanlines = Vec::new();
    let mut stored_blocks = 0;
    loop {
        let head = zlib[pos];
        assert_eq!((head >> 1) & 0b11, 0, "stored block");
        let len = u16::from_le_bytes([zlib[pos + 1], zlib[pos + 2]]);
        let nlen = u16::from_le_bytes([zlib[pos + 3], zlib[pos + 4]]);
        assert_eq!(nlen, !len);
        scanlines.extend_from_slice(&zlib[pos + 5..pos + 5 + usize::from(len)]);
        pos += 5 + usize::from(len);
        stored_blocks += 1;
        if head & 1 == 1 {
            break;
        }
    }
    let adler = u32::from_be_bytes(zlib[pos..pos + 4].try_into().unwrap());
    assert_eq!(pos + 4, zlib.len(), "bytes after the adler32");
    assert_eq!(
        adler,
        adler32_reference(&scanlines),
        "adler32 of the scanlines"
    );
    DecodedPng {
        width,
        height,
        scanlines,
        stored_blocks,
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn encode_then_decode_returns_the_same_bundle() {
    let original = small();
    let bytes = bundle::encode(&original).unwrap();
    assert_eq!(bundle::decode(&bytes).unwrap(), original);
}

#[test]
fn decode_reader_agrees_with_decode() {
    let bytes = bundle::encode(&small()).unwrap();
    let from_slice = bundle::decode(&bytes).unwrap();
    let from_reader =
        bundle::decode_reader(Cursor::new(&bytes), DEFAULT_MAX_PAYLOAD_BYTES).unwrap();
    assert_eq!(from_reader, from_slice);
}

/// A reader that hands out one byte per call and is interrupted before every other call, as
/// slow pipes and sockets may be.
struct Trickle<'a> {
    bytes: &'a [u8],
    interrupt: bool,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let Some((first, rest)) = self.bytes.split_first() else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        buf[0] = *first;
        self.bytes = rest;
        Ok(1)
    }
}

#[test]
fn decode_reader_handles_short_and_interrupted_reads() {
    let decoded = bundle::decode_reader(
        Trickle {
            bytes: GOLDEN,
            interrupt: false,
        },
        DEFAULT_MAX_PAYLOAD_BYTES,
    )
    .unwrap();
    assert_eq!(decoded, golden());
}

#[test]
fn decode_reader_stops_at_the_end_of_the_bundle() {
    let mut stream = GOLDEN.to_vec();
    stream.extend_from_slice(b"next");
    let mut cursor = Cursor::new(&stream);
    bundle::decode_reader(&mut cursor, DEFAULT_MAX_PAYLOAD_BYTES).unwrap();
    assert_eq!(cursor.position(), GOLDEN.len() as u64);
}

#[test]
fn payload_is_the_sections_in_field_order() {
    let b = small();
    let payload = raw_payload(&b);
    let concatenated: Vec<u8> = [
        bincode::serde::encode_to_vec(&b.metadata, WIRE_CONFIG).unwrap(),
        bincode::serde::encode_to_vec(&b.operators, WIRE_CONFIG).unwrap(),
        bincode::serde::encode_to_vec(&b.prior, WIRE_CONFIG).unwrap(),
        bincode::serde::encode_to_vec(&b.encoder, WIRE_CONFIG).unwrap(),
        bincode::serde::encode_to_vec(&b.gallery, WIRE_CONFIG).unwrap(),
        bincode::serde::encode_to_vec(&b.thumbnails, WIRE_CONFIG).unwrap(),
        bincode::serde::encode_to_vec(&b.pca, WIRE_CONFIG).unwrap(),
        bincode::serde::encode_to_vec(&b.stats, WIRE_CONFIG).unwrap(),
        bincode::serde::encode_to_vec(&b.run, WIRE_CONFIG).unwrap(),
    ]
    .concat();
    assert_eq!(payload, concatenated);
    let bytes = bundle::encode(&b).unwrap();
    assert_eq!(&bytes[HEADER_LEN..], &payload[..]);
}

// ---------------------------------------------------------------------------------------------
// The golden fixtures (each written once by `cargo run -p mclr-shared --example
// write_golden_bundle` when its version was current)

#[test]
fn golden_header_matches_the_documented_layout() {
    let payload = &GOLDEN[24..];
    assert_eq!(FORMAT_VERSION, 3);
    assert_eq!(
        &GOLDEN[..24],
        &header(3, payload.len() as u64, crc32fast::hash(payload))[..]
    );
    let v2_payload = &GOLDEN_V2[24..];
    assert_eq!(
        &GOLDEN_V2[..24],
        &header(2, v2_payload.len() as u64, crc32fast::hash(v2_payload))[..]
    );
    let v1_payload = &GOLDEN_V1[24..];
    assert_eq!(
        &GOLDEN_V1[..24],
        &header(1, v1_payload.len() as u64, crc32fast::hash(v1_payload))[..]
    );
    assert_eq!(MAGIC, [0x89, b'M', b'C', b'L', b'R', b'\r', b'\n', 0x1a]);
    assert_eq!(HEADER_LEN, 24);
    assert!(SUPPORTED_VERSIONS.contains(&1));
    assert!(SUPPORTED_VERSIONS.contains(&FORMAT_VERSION));
}

#[test]
fn golden_decodes_with_the_expected_contents() {
    let g = golden();
    bundle::validate(&g).unwrap();
    assert_eq!(g.operators.dtype, DType::F32);
    assert_eq!(g.operators.shape, [2, 2, 4, 4]);
    assert_eq!(
        (
            g.num_operators(),
            g.blocks(),
            g.block_size(),
            g.feature_dim()
        ),
        (2, 2, 4, 8)
    );
    assert_eq!((g.num_gallery(), g.num_classes()), (8, 3));

    let meta = &g.metadata;
    assert_eq!(meta.dataset, "synthetic");
    assert_eq!(meta.method, "manifoldclr");
    assert_eq!(meta.producer, "mclr-shared write_golden_bundle");
    assert!(meta.config_toml.contains("block_size = 4"));
    assert_eq!((meta.epochs, meta.steps, meta.threshold), (3, 1234, 0.1));
    assert_eq!(meta.metrics.get("linear_top1"), Some(&0.5));
    assert_eq!(meta.metrics.get("knn_top1"), Some(&0.25));

    assert_eq!(g.prior.trunk.len(), 2);
    assert_eq!(g.prior.trunk[0].weight.shape, [4, 8]);
    assert_eq!(g.encoder.trunk[0].weight.shape, [4, 16]);
    assert_eq!(g.encoder.loc_head.weight.shape, [2, 4]);
    assert_eq!(g.encoder.scale_head.bias.shape, [2]);
    for layer in g.prior.trunk.iter().chain([&g.encoder.loc_head]) {
        assert_eq!(layer.weight.dtype, DType::I8);
        let scale = layer
            .weight_scale
            .as_ref()
            .expect("i8 weights carry a scale");
        assert_eq!(scale.shape, [layer.weight.shape[0]]);
    }

    assert_eq!(g.gallery.split, "test");
    assert_eq!(g.gallery.features.dtype, DType::F16);
    assert_eq!(g.gallery.features.shape, [8, 8]);
    assert_eq!(g.gallery.class_names, ["airplane", "automobile", "bird"]);
    assert_eq!(
        g.gallery.labels.to_u16_vec().unwrap(),
        [0, 1, 2, 0, 1, 2, 0, 1]
    );
    assert_eq!(
        g.gallery.source_indices.to_u32_vec().unwrap(),
        [0, 1, 2, 3, 4, 5, 6, 7]
    );

    let t = &g.thumbnails;
    assert_eq!(
        (t.format, t.tile_px, t.columns, t.count),
        (ImageFormat::Png, 4, 3, 8)
    );
    let png = decode_png(&t.sheet);
    assert_eq!((png.width, png.height), (12, 12));

    assert_eq!(t.sheet_file, None);

    assert_eq!(g.pca.components.shape, [2, 8]);
    assert_eq!(g.stats.class_heatmap.shape, [3, 2]);

    assert_eq!(g.run.saved_unix_ms, 1_796_515_200_000);
    assert!(!g.run.live);
    let labels: Vec<&str> = g
        .run
        .training_logs
        .iter()
        .map(|l| l.label.as_str())
        .collect();
    assert_eq!(labels, ["manifoldclr", "simclr"]);
    let curves = mclr_shared::curves::parse(&g.run.training_logs[0].jsonl).unwrap();
    assert_eq!(
        curves.get("loss.total").unwrap().points,
        [(0, 4.5), (10, 4.25)]
    );
}

#[test]
fn golden_v2_opens_as_the_current_bundle_without_a_run_record() {
    let v2 = bundle::decode(GOLDEN_V2).unwrap();
    let mut current = golden();
    assert_eq!(v2.run, RunRecord::default());
    assert_eq!(v2.thumbnails.sheet_file, None);
    // Same spec, seed and storage: only the run record is new in v3.
    current.run = RunRecord::default();
    assert_eq!(v2, current);
    let reencoded = bundle::encode(&v2).unwrap();
    assert_eq!(reencoded[8..12], FORMAT_VERSION.to_le_bytes());
    assert_eq!(bundle::decode(&reencoded).unwrap(), v2);
}

#[test]
fn a_sheet_beside_the_bundle_is_a_plain_file_name_and_leaves_the_sheet_empty() {
    let g = golden();
    let mut external = g.clone();
    let sheet = std::mem::take(&mut external.thumbnails.sheet);
    external.thumbnails.sheet_file = Some("live-thumbs.png".to_owned());
    let bytes = bundle::encode(&external).unwrap();
    let decoded = bundle::decode(&bytes).unwrap();
    assert_eq!(decoded, external);
    // The reader checks the fetched sheet against the declared geometry...
    bundle::check_sheet(&decoded.thumbnails, &sheet).unwrap();
    let err = bundle::check_sheet(&decoded.thumbnails, &sheet[..20]).unwrap_err();
    assert!(err.to_string().contains("thumbnails.sheet"), "{err}");
    let err = bundle::check_sheet(&decoded.thumbnails, b"GIF89a").unwrap_err();
    assert!(err.to_string().contains("signature"), "{err}");
    // ...and names that could leave the bundle's folder are refused.
    for bad in [
        "../thumbs.png",
        "/etc/passwd",
        ".hidden",
        "a/b.png",
        "",
        "x\\y",
        "é.png",
    ] {
        let mut b = external.clone();
        b.thumbnails.sheet_file = Some(bad.to_owned());
        let err = bundle::validate(&b).unwrap_err();
        assert!(
            err.to_string().contains("thumbnails.sheet_file"),
            "{bad:?}: {err}"
        );
    }
    let mut both = external.clone();
    both.thumbnails.sheet = sheet;
    let err = bundle::validate(&both).unwrap_err();
    assert!(err.to_string().contains("must be empty"), "{err}");
}

#[test]
fn training_logs_over_their_caps_are_refused() {
    let mut g = golden();
    g.run.training_logs = (0..=limits::MAX_TRAINING_LOGS)
        .map(|i| TrainingLog {
            label: format!("run{i}"),
            jsonl: String::new(),
        })
        .collect();
    let err = bundle::validate(&g).unwrap_err();
    assert!(err.to_string().contains("run.training_logs"), "{err}");
    let mut g = golden();
    g.run.training_logs[0].jsonl = "x".repeat(limits::MAX_TRAINING_LOG_BYTES + 1);
    let err = bundle::validate(&g).unwrap_err();
    assert!(
        err.to_string().contains("run.training_logs (jsonl)"),
        "{err}"
    );
}

#[test]
fn golden_operators_have_the_stable_init_structure() {
    let g = golden();
    let psi = g.operators.to_f32_vec().unwrap();
    for block in psi.chunks_exact(16) {
        let at = |i: usize, j: usize| block[i * 4 + j];
        let (r, w) = (at(0, 0), at(1, 0));
        assert!(r.abs() <= 5e-5 && w.abs() <= 3.0);
        for p in [0, 2] {
            assert_eq!(
                [at(p, p), at(p, p + 1), at(p + 1, p), at(p + 1, p + 1)],
                [r, -w, w, r]
            );
        }
        for i in 0..4 {
            for j in 0..4 {
                if i / 2 != j / 2 {
                    assert_eq!(at(i, j), 0.0, "outside the 2x2 diagonal blocks");
                }
            }
        }
    }
    let norms = g.stats.norms.to_f32_vec().unwrap();
    for (norm, op) in norms.iter().zip(psi.chunks_exact(32)) {
        let frobenius = op.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - frobenius).abs() <= 1e-6 * frobenius.max(1.0));
    }
}

#[test]
fn golden_reencodes_to_identical_bytes() {
    assert_eq!(bundle::encode(&golden()).unwrap(), GOLDEN);
}

#[test]
fn golden_v1_opens_and_upgrades_to_the_same_bundle_with_f32_weights() {
    let v1 = bundle::decode(GOLDEN_V1).unwrap();
    // v1 has no run record (v3's addition).
    let current = Bundle {
        run: RunRecord::default(),
        ..golden()
    };
    // Same spec and seed: everything but the weights' storage is identical...
    for layer in v1.prior.trunk.iter().chain(&v1.encoder.trunk) {
        assert_eq!(layer.weight.dtype, DType::F32);
        assert_eq!(layer.weight_scale, None);
    }
    assert_eq!(
        (&v1.metadata, &v1.operators, &v1.gallery, &v1.thumbnails),
        (
            &current.metadata,
            &current.operators,
            &current.gallery,
            &current.thumbnails
        )
    );
    assert_eq!((&v1.pca, &v1.stats), (&current.pca, &current.stats));
    // ...and quantising v1's f32 weights gives exactly the v2 fixture's int8 weights.
    let mut upgraded = v1.clone();
    upgraded.prior = v1.prior.with_precision(WeightPrecision::I8).unwrap();
    upgraded.encoder = v1.encoder.with_precision(WeightPrecision::I8).unwrap();
    assert_eq!(upgraded, current);
    // A v1 file re-encodes as the current version.
    let reencoded = bundle::encode(&v1).unwrap();
    assert_eq!(reencoded[8..12], FORMAT_VERSION.to_le_bytes());
    assert_eq!(bundle::decode(&reencoded).unwrap(), v1);
}

#[test]
fn int8_weights_dequantize_within_half_a_step_of_each_row() {
    let v1 = bundle::decode(GOLDEN_V1).unwrap();
    for (exact, stored) in v1.encoder.trunk.iter().zip(&golden().encoder.trunk) {
        let a = exact.dense_weight().unwrap();
        let b = stored.dense_weight().unwrap();
        let cols = exact.weight.shape[1] as usize;
        for (row_a, row_b) in a.chunks(cols).zip(b.chunks(cols)) {
            let step = row_a.iter().fold(0.0_f32, |m, w| m.max(w.abs())) / 127.0;
            for (x, y) in row_a.iter().zip(row_b) {
                assert!(
                    (x - y).abs() <= 0.5 * step * (1.0 + 1e-5) + 1e-12,
                    "{x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn weights_at_every_precision_give_the_same_forward_pass_to_their_tolerance() {
    let b = small();
    let x: Vec<f32> = (0..b.feature_dim())
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let exact = b.prior.to_mlp("prior").unwrap().forward(&x).unwrap();
    for (precision, tol) in [
        (WeightPrecision::F32, 0.0),
        (WeightPrecision::F16, 2e-3),
        (WeightPrecision::I8, 3e-2),
    ] {
        let stored = b.prior.with_precision(precision).unwrap();
        let out = stored.to_mlp("prior").unwrap().forward(&x).unwrap();
        let scale = exact.loc.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        for (u, v) in exact.loc.iter().zip(&out.loc) {
            assert!((u - v).abs() <= tol * scale, "{precision}: {u} vs {v}");
        }
    }
    let int8 = b.prior.with_precision(WeightPrecision::I8).unwrap();
    for (q, f) in int8.trunk.iter().zip(&b.prior.trunk) {
        assert_eq!(
            q.weight.data.len() * 4,
            f.weight.data.len(),
            "a byte per weight"
        );
    }
}

#[test]
fn int8_weight_without_its_scale_is_rejected_naming_the_layer() {
    let mut g = golden();
    g.encoder.trunk[1].weight_scale = None;
    let err = bundle::validate(&g).unwrap_err();
    assert!(
        err.to_string().contains("encoder.trunk[1].weight_scale"),
        "{err}"
    );
    let mut g = golden();
    g.prior.loc_head.weight_scale = Some(ArrayBlob::from_f32(&[2], &[0.1, -0.1]).unwrap());
    let err = bundle::validate(&g).unwrap_err();
    assert!(err.to_string().contains("negative scale"), "{err}");
    let mut g = golden();
    let f32_layer = bundle::decode(GOLDEN_V1).unwrap().prior.trunk[0].clone();
    g.prior.trunk[0] = LinearWeights {
        weight_scale: g.prior.trunk[0].weight_scale.clone(),
        ..f32_layer
    };
    let err = bundle::validate(&g).unwrap_err();
    assert!(
        err.to_string().contains("only i8 weights carry a scale"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Container errors

#[test]
fn truncation_at_every_section_boundary_reports_the_exact_lengths() {
    let g = golden();
    let payload_len = GOLDEN.len() - HEADER_LEN;
    let ends = section_ends(&g);
    assert_eq!(
        ends.last().unwrap().1,
        payload_len,
        "sections cover the payload"
    );
    let boundaries = std::iter::once(("start", 0)).chain(ends);
    for (section, offset) in boundaries {
        let cut = &GOLDEN[..HEADER_LEN + offset];
        let result = bundle::decode(cut);
        if offset == payload_len {
            assert_eq!(result.unwrap(), g);
            continue;
        }
        let expected = Error::Truncated {
            section: "payload",
            expected: payload_len as u64,
            got: offset as u64,
        };
        assert_eq!(result.unwrap_err(), expected, "cut after {section}");
        let from_reader = bundle::decode_reader(cut, DEFAULT_MAX_PAYLOAD_BYTES).unwrap_err();
        assert_eq!(from_reader, expected, "reader cut after {section}");
    }
}

#[test]
fn truncation_at_every_byte_is_reported_as_truncated() {
    let payload_len = (GOLDEN.len() - HEADER_LEN) as u64;
    for len in 0..GOLDEN.len() {
        let err = bundle::decode(&GOLDEN[..len]).unwrap_err();
        let expected = if len < HEADER_LEN {
            Error::Truncated {
                section: "header",
                expected: 24,
                got: len as u64,
            }
        } else {
            Error::Truncated {
                section: "payload",
                expected: payload_len,
                got: (len - HEADER_LEN) as u64,
            }
        };
        assert_eq!(err, expected, "cut at {len}");
    }
}

#[test]
fn truncated_message_names_section_and_lengths() {
    let err = bundle::decode(&GOLDEN[..HEADER_LEN + 100]).unwrap_err();
    let message = err.to_string();
    let payload_len = (GOLDEN.len() - HEADER_LEN).to_string();
    assert!(message.contains("payload"), "{message}");
    assert!(message.contains(&payload_len), "{message}");
    assert!(message.contains("100"), "{message}");
}

#[test]
fn every_corrupted_payload_byte_fails_the_checksum() {
    let stored = u32::from_le_bytes(GOLDEN[20..24].try_into().unwrap());
    for i in HEADER_LEN..GOLDEN.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut bytes = GOLDEN.to_vec();
            bytes[i] ^= mask;
            let found = crc32fast::hash(&bytes[HEADER_LEN..]);
            assert_eq!(
                bundle::decode(&bytes).unwrap_err(),
                Error::ChecksumMismatch {
                    expected: stored,
                    found
                },
                "byte {i} ^ {mask:#x}"
            );
        }
    }
}

#[test]
fn corrupted_checksum_field_fails_the_checksum() {
    let mut bytes = GOLDEN.to_vec();
    bytes[21] ^= 0x10;
    assert!(matches!(
        bundle::decode(&bytes),
        Err(Error::ChecksumMismatch { .. })
    ));
}

#[test]
fn corrupted_magic_is_bad_magic() {
    for i in 0..8 {
        let mut bytes = GOLDEN.to_vec();
        bytes[i] ^= 0x20;
        let mut found = MAGIC;
        found[i] ^= 0x20;
        assert_eq!(
            bundle::decode(&bytes).unwrap_err(),
            Error::BadMagic {
                found,
                expected: MAGIC
            }
        );
        // Shorter than the magic, but already wrong: still not a bundle.
        assert!(matches!(
            bundle::decode(&bytes[..=i]),
            Err(Error::BadMagic { .. })
        ));
    }
}

#[test]
fn text_mode_line_ending_conversion_is_caught_by_the_magic() {
    let mut mangled = GOLDEN.to_vec();
    mangled.remove(5); // "\r\n" became "\n"
    assert!(matches!(
        bundle::decode(&mangled),
        Err(Error::BadMagic { .. })
    ));
}

#[test]
fn other_files_are_bad_magic_not_truncated() {
    let png = &small().thumbnails.sheet;
    assert!(matches!(bundle::decode(png), Err(Error::BadMagic { .. })));
    assert!(matches!(
        bundle::decode(b"{\""),
        Err(Error::BadMagic { .. })
    ));
    assert_eq!(
        bundle::decode(&[]).unwrap_err(),
        Error::Truncated {
            section: "header",
            expected: 24,
            got: 0
        }
    );
}

#[test]
fn unknown_version_is_unsupported_with_found_and_supported() {
    for version in [0, 4, u32::MAX] {
        let mut bytes = GOLDEN.to_vec();
        bytes[8..12].copy_from_slice(&u32::to_le_bytes(version));
        let err = bundle::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            Error::UnsupportedVersion {
                found: version,
                supported: "1..=3".to_owned()
            }
        );
        let message = err.to_string();
        assert!(message.contains(&format!("v{version}")), "{message}");
        assert!(message.contains("v1..=3"), "{message}");
    }
}

#[test]
fn version_is_checked_before_the_payload_length() {
    // A future version may lay out its payload differently: report the version, not the length.
    let mut file = header(4, u64::MAX, 0);
    file.push(0);
    assert!(matches!(
        bundle::decode(&file),
        Err(Error::UnsupportedVersion { found: 4, .. })
    ));
}

#[test]
fn huge_payload_length_is_too_large_before_allocating() {
    let len = u64::MAX / 2;
    let mut file = header(1, len, 0);
    file.extend_from_slice(&[0; 16]);
    let expected = Error::TooLarge {
        what: "payload".to_owned(),
        len,
        limit: DEFAULT_MAX_PAYLOAD_BYTES,
    };
    assert_eq!(bundle::decode(&file).unwrap_err(), expected);
    // An endless stream behind the header is not read at all.
    let endless = Cursor::new(header(1, len, 0)).chain(std::io::repeat(0));
    assert_eq!(
        bundle::decode_reader(endless, DEFAULT_MAX_PAYLOAD_BYTES).unwrap_err(),
        expected
    );
    let message = expected.to_string();
    assert!(message.contains(&len.to_string()), "{message}");
    assert!(
        message.contains(&DEFAULT_MAX_PAYLOAD_BYTES.to_string()),
        "{message}"
    );
    assert_no_large_allocation();
}

#[test]
fn a_lying_length_under_the_limit_costs_only_the_bytes_present() {
    let claimed = 200 << 20;
    let mut file = header(1, claimed, 0);
    file.extend_from_slice(&[7; 10]);
    let expected = Error::Truncated {
        section: "payload",
        expected: claimed,
        got: 10,
    };
    assert_eq!(bundle::decode(&file).unwrap_err(), expected);
    assert_eq!(
        bundle::decode_reader(Cursor::new(&file), DEFAULT_MAX_PAYLOAD_BYTES).unwrap_err(),
        expected
    );
    assert_no_large_allocation();
}

#[test]
fn payload_limit_is_the_callers() {
    let payload_len = (GOLDEN.len() - HEADER_LEN) as u64;
    assert!(bundle::decode_with_limit(GOLDEN, payload_len).is_ok());
    assert_eq!(
        bundle::decode_with_limit(GOLDEN, payload_len - 1).unwrap_err(),
        Error::TooLarge {
            what: "payload".to_owned(),
            len: payload_len,
            limit: payload_len - 1
        }
    );
    assert!(matches!(
        bundle::decode_reader(GOLDEN, payload_len - 1),
        Err(Error::TooLarge { .. })
    ));
}

/// Replaces the varint at `offset` of `payload` by the varint of `value`.
fn splice_varint(payload: &[u8], offset: usize, old_value: u64, value: u64) -> Vec<u8> {
    let old_len = encoded_len(&old_value);
    let new = bincode::serde::encode_to_vec(value, WIRE_CONFIG).unwrap();
    assert_eq!(
        bincode::serde::decode_from_slice::<u64, _>(&payload[offset..], WIRE_CONFIG)
            .unwrap()
            .0,
        old_value,
        "the spliced field is where the test thinks it is"
    );
    [&payload[..offset], &new[..], &payload[offset + old_len..]].concat()
}

#[test]
fn huge_blob_length_inside_a_valid_payload_is_rejected_without_allocating() {
    let g = golden();
    let payload = &GOLDEN[HEADER_LEN..];
    // operators = dtype, shape, then the byte blob's length.
    let offset = encoded_len(&g.metadata)
        + encoded_len(&g.operators.dtype)
        + encoded_len(&g.operators.shape);
    for huge in [1_u64 << 40, 1 << 62, (1 << 20) - 1] {
        let forged = splice_varint(payload, offset, g.operators.data.len() as u64, huge);
        let err = bundle::decode(&frame(&forged)).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    }
    assert_no_large_allocation();
}

#[test]
fn huge_string_length_inside_a_valid_payload_is_rejected_without_allocating() {
    let g = golden();
    let payload = &GOLDEN[HEADER_LEN..];
    // The payload starts with metadata.dataset: a length, then UTF-8.
    let forged = splice_varint(payload, 0, g.metadata.dataset.len() as u64, 1 << 40);
    let err = bundle::decode(&frame(&forged)).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    assert_no_large_allocation();
}

#[test]
fn bytes_after_the_payload_are_trailing() {
    let mut bytes = GOLDEN.to_vec();
    bytes.extend_from_slice(&[0, 1, 2]);
    let err = bundle::decode(&bytes).unwrap_err();
    assert_eq!(err, Error::TrailingBytes { extra: 3 });
    assert!(err.to_string().contains('3'));
}

#[test]
fn bytes_left_inside_the_payload_are_malformed() {
    let mut payload = GOLDEN[HEADER_LEN..].to_vec();
    payload.extend_from_slice(&[0, 0]);
    let err = bundle::decode(&frame(&payload)).unwrap_err();
    let Error::Malformed { reason } = &err else {
        panic!("expected Malformed, got {err:?}");
    };
    assert!(
        reason.contains(&(payload.len() - 2).to_string()),
        "{reason}"
    );
}

#[test]
fn a_string_that_is_not_utf8_is_malformed_with_the_utf8_error_as_its_source() {
    let g = golden();
    let mut payload = GOLDEN[HEADER_LEN..].to_vec();
    // The payload starts with metadata.dataset: a one-byte length, then its UTF-8 bytes.
    assert!(!g.metadata.dataset.is_empty() && g.metadata.dataset.len() <= 250);
    payload[1] = 0xff;
    let err = bundle::decode(&frame(&payload)).unwrap_err();
    let Error::NotUtf8 { field, offset, .. } = &err else {
        panic!("expected NotUtf8, got {err:?}");
    };
    assert_eq!((field.as_str(), *offset), ("metadata.dataset", 1));
    let source = std::error::Error::source(&err).expect("the UTF-8 error is the source");
    let cause = source.to_string();
    assert!(cause.contains("invalid utf-8"), "{cause}");
    assert!(!err.to_string().contains(&cause), "{err}");
    assert_eq!(
        mclr_shared::error_chain(&err),
        format!("{err}: {cause}"),
        "the chain is the message, then the cause once"
    );
}

#[test]
fn garbage_with_a_valid_checksum_is_malformed() {
    let garbage: Vec<u8> = (0..300_u32).map(|i| (i * 151 % 251) as u8).collect();
    // (This garbage's first string is not UTF-8: the malformed payload's more precise variant.)
    assert!(matches!(
        bundle::decode(&frame(&garbage)),
        Err(Error::Malformed { .. } | Error::NotUtf8 { .. })
    ));
    assert!(matches!(
        bundle::decode(&frame(&[])),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn reader_errors_are_reported() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let err = bundle::decode_reader(Broken, DEFAULT_MAX_PAYLOAD_BYTES).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Read {
                section: "header",
                ..
            }
        ),
        "{err:?}"
    );
    // The I/O error is the source, and only the source: printed with its chain, it appears once.
    let source = std::error::Error::source(&err).expect("the I/O error is the source");
    assert_eq!(source.to_string(), "disk on fire");
    assert!(!err.to_string().contains("disk on fire"), "{err}");
    let chain = mclr_shared::error_chain(&err);
    assert_eq!(chain.matches("disk on fire").count(), 1, "{chain}");
    assert_eq!(chain, "reading the bundle header failed: disk on fire");
    let err = bundle::decode_reader(&GOLDEN[..10], DEFAULT_MAX_PAYLOAD_BYTES).unwrap_err();
    assert_eq!(
        err,
        Error::Truncated {
            section: "header",
            expected: 24,
            got: 10
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Validation: every inconsistency is a typed error naming its field, on encode and on decode

/// Asserts that `bundle` is refused by `encode`, and by `decode` when its payload is written
/// anyway, with `expected`.
fn assert_invalid(bundle: &Bundle, expected: &Error) {
    assert_eq!(&bundle::validate(bundle).unwrap_err(), expected);
    assert_eq!(&bundle::encode(bundle).unwrap_err(), expected);
    assert_eq!(
        &bundle::decode(&frame(&raw_payload(bundle))).unwrap_err(),
        expected
    );
}

#[test]
fn labels_of_the_wrong_length_are_a_shape_error_naming_gallery_labels() {
    let mut g = golden();
    g.gallery.labels = ArrayBlob::from_u16(&[7], &[0; 7]).unwrap();
    let expected = Error::Shape {
        field: "gallery.labels".to_owned(),
        expected: vec![8],
        found: vec![7],
    };
    assert_invalid(&g, &expected);
    let message = expected.to_string();
    assert!(message.contains("gallery.labels"), "{message}");
    assert!(
        message.contains("[8]") && message.contains("[7]"),
        "{message}"
    );
}

#[test]
fn nan_weight_is_non_finite_with_field_and_index() {
    let mut scaled = golden();
    set_f32(
        scaled.prior.trunk[1].weight_scale.as_mut().unwrap(),
        2,
        f32::NAN,
    );
    assert!(matches!(
        bundle::validate(&scaled),
        Err(Error::NonFinite { ref field, index: 2, .. }) if field == "prior.trunk[1].weight_scale"
    ));
    let mut g = bundle::decode(GOLDEN_V1).unwrap();
    set_f32(&mut g.prior.trunk[1].weight, 5, f32::NAN);
    let expected = Error::NonFinite {
        field: "prior.trunk[1].weight".to_owned(),
        index: 5,
        value: "NaN".to_owned(),
    };
    assert_invalid(&g, &expected);
    let message = expected.to_string();
    assert!(
        message.contains("prior.trunk[1].weight") && message.contains('5'),
        "{message}"
    );
}

#[test]
fn infinite_f16_feature_is_non_finite_after_widening() {
    let mut g = golden();
    let index = 11;
    g.gallery.features.data[2 * index..2 * index + 2]
        .copy_from_slice(&half::f16::NEG_INFINITY.to_le_bytes());
    assert_invalid(
        &g,
        &Error::NonFinite {
            field: "gallery.features".to_owned(),
            index,
            value: "-inf".to_owned(),
        },
    );
}

#[test]
fn label_past_the_class_list_is_invalid() {
    let mut g = golden();
    g.gallery.labels = ArrayBlob::from_u16(&[8], &[0, 1, 3, 0, 1, 2, 0, 1]).unwrap();
    let err = bundle::validate(&g).unwrap_err();
    let Error::Invalid { field, reason } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(field, "gallery.labels");
    assert!(
        reason.contains("label 3") && reason.contains("index 2"),
        "{reason}"
    );
    assert_invalid(&g, &err);
}

#[test]
fn encode_refuses_an_invalid_bundle() {
    let mut g = golden();
    g.thumbnails.count = 7;
    let err = bundle::encode(&g).unwrap_err();
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "thumbnails.count"));
    assert!(err.to_string().contains('7') && err.to_string().contains('8'));
}

#[test]
fn wrong_dtype_is_a_dtype_error() {
    let mut g = golden();
    g.gallery.labels = ArrayBlob::from_u32(&[8], &[0; 8]).unwrap();
    assert_invalid(
        &g,
        &Error::DType {
            field: "gallery.labels".to_owned(),
            expected: "u16".to_owned(),
            found: "u32".to_owned(),
        },
    );
    let mut g = golden();
    g.gallery.features = ArrayBlob::from_u16(&[8, 8], &[0; 64]).unwrap();
    assert_invalid(
        &g,
        &Error::DType {
            field: "gallery.features".to_owned(),
            expected: "f16 or f32".to_owned(),
            found: "u16".to_owned(),
        },
    );
}

#[test]
fn wrong_byte_length_is_a_byte_length_error() {
    let mut g = golden();
    g.operators.data.pop();
    let expected = Error::ByteLength {
        field: "operators".to_owned(),
        dtype: "f32".to_owned(),
        shape: vec![2, 2, 4, 4],
        expected: 256,
        found: 255,
    };
    assert_invalid(&g, &expected);
    let message = expected.to_string();
    assert!(
        message.contains("256") && message.contains("255"),
        "{message}"
    );
}

#[test]
fn shape_whose_element_count_overflows_is_an_error_not_a_panic() {
    let mut g = golden();
    g.operators.shape = vec![u64::MAX, 2, 4, 4];
    let err = bundle::validate(&g).unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "operators"),
        "{err:?}"
    );
    assert!(bundle::decode(&frame(&raw_payload(&g))).is_err());
    let blob = ArrayBlob {
        dtype: DType::F32,
        shape: vec![1 << 40, 1 << 40],
        data: vec![],
    };
    assert!(blob.numel().is_err());
    assert!(blob.to_f32_vec().is_err());
}

/// One mutation per rule of `validate`, with the field it must name.
#[test]
fn each_inconsistency_names_its_field() {
    type Mutation = fn(&mut Bundle);
    let cases: &[(&str, Mutation)] = &[
        ("metadata.threshold", |b| b.metadata.threshold = -0.5),
        ("metadata.threshold", |b| {
            b.metadata.threshold = f32::INFINITY;
        }),
        ("metadata.metrics[\"knn_top1\"]", |b| {
            b.metadata.metrics.insert("knn_top1".into(), f64::NAN);
        }),
        ("operators", |b| b.operators.shape = vec![2, 2, 16]),
        ("operators", |b| b.operators.shape = vec![2, 2, 2, 8]),
        ("operators", |b| {
            b.operators = ArrayBlob::from_f32(&[0, 2, 4, 4], &[]).unwrap();
        }),
        ("operators", |b| set_f32(&mut b.operators, 3, f32::NAN)),
        ("prior.trunk", |b| b.prior.trunk.clear()),
        ("prior.trunk[0].weight", |b| {
            b.prior.trunk[0].weight = ArrayBlob::from_f32(&[4, 9], &[0.0; 36]).unwrap();
        }),
        ("prior.trunk[0].bias", |b| {
            b.prior.trunk[0].bias = ArrayBlob::from_f32(&[3], &[0.0; 3]).unwrap();
        }),
        ("prior.trunk[1].weight", |b| {
            b.prior.trunk[1].weight = ArrayBlob::from_f32(&[4, 5], &[0.0; 20]).unwrap();
        }),
        ("prior.scale_head.weight", |b| {
            b.prior.scale_head.weight = ArrayBlob::from_f32(&[3, 4], &[0.0; 12]).unwrap();
        }),
        ("encoder.trunk[0].weight", |b| {
            b.encoder.trunk[0].weight = ArrayBlob::from_f32(&[4, 8], &[0.0; 32]).unwrap();
        }),
        ("encoder.loc_head.weight", |b| {
            b.encoder.loc_head.weight = ArrayBlob::from_f32(&[2, 5], &[0.0; 10]).unwrap();
        }),
        ("encoder.loc_head.bias", |b| {
            set_f32(&mut b.encoder.loc_head.bias, 1, f32::NAN);
        }),
        ("gallery.features", |b| {
            b.gallery.features = ArrayBlob::from_f16_lossy(&[8, 7], &[0.0; 56]).unwrap();
        }),
        ("gallery.features", |b| {
            b.gallery.features = ArrayBlob::from_f16_lossy(&[0, 8], &[]).unwrap();
        }),
        ("gallery.class_names", |b| b.gallery.class_names.clear()),
        ("gallery.source_indices", |b| {
            b.gallery.source_indices = ArrayBlob::from_u32(&[9], &[0; 9]).unwrap();
        }),
        ("thumbnails.count", |b| b.thumbnails.count = 9),
        ("thumbnails.tile_px", |b| b.thumbnails.tile_px = 0),
        ("thumbnails.columns", |b| b.thumbnails.columns = 0),
        ("thumbnails.sheet", |b| b.thumbnails.sheet[1] = b'Q'),
        ("thumbnails.sheet", |b| {
            b.thumbnails.format = ImageFormat::Jpeg;
        }),
        ("thumbnails.sheet", |b| b.thumbnails.tile_px = 5),
        ("thumbnails.sheet", |b| b.thumbnails.columns = 4),
        ("pca.mean", |b| {
            b.pca.mean = ArrayBlob::from_f32(&[7], &[0.0; 7]).unwrap();
        }),
        ("pca.components", |b| {
            b.pca.components = ArrayBlob::from_f32(&[1, 8], &[0.0; 8]).unwrap();
        }),
        ("pca.explained_variance", |b| {
            b.pca.explained_variance = ArrayBlob::from_f32(&[3], &[0.0; 3]).unwrap();
        }),
        ("stats.norms", |b| set_f32(&mut b.stats.norms, 0, -1.0)),
        ("stats.usage", |b| set_f32(&mut b.stats.usage, 1, 1.5)),
        ("stats.usage", |b| {
            b.stats.usage = ArrayBlob::from_f32(&[3], &[0.0; 3]).unwrap();
        }),
        ("stats.class_heatmap", |b| {
            b.stats.class_heatmap = ArrayBlob::from_f32(&[2, 2], &[0.0; 4]).unwrap();
        }),
        ("stats.class_heatmap", |b| {
            set_f32(&mut b.stats.class_heatmap, 4, f32::NAN);
        }),
    ];
    let pristine = golden();
    for (field, mutate) in cases {
        let mut b = pristine.clone();
        mutate(&mut b);
        let err = bundle::validate(&b).unwrap_err();
        let named = match &err {
            Error::Shape { field, .. }
            | Error::ByteLength { field, .. }
            | Error::DType { field, .. }
            | Error::NonFinite { field, .. }
            | Error::Invalid { field, .. } => field.clone(),
            other => panic!("{other:?} names no field"),
        };
        assert_eq!(&named, field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
        assert_eq!(bundle::decode(&frame(&raw_payload(&b))).unwrap_err(), err);
    }
}

/// A JPEG with only the segments the validator reads: SOI, APP0, SOF0 (height × width), EOI.
fn minimal_jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = vec![0xff, 0xd8];
    jpeg.extend_from_slice(&[
        0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ]);
    jpeg.extend_from_slice(&[0xff, 0xc0, 0x00, 0x11, 8]);
    jpeg.extend_from_slice(&height.to_be_bytes());
    jpeg.extend_from_slice(&width.to_be_bytes());
    jpeg.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    jpeg.extend_from_slice(&[0xff, 0xd9]);
    jpeg
}

#[test]
fn jpeg_sheet_is_accepted_when_its_frame_covers_the_tiles() {
    let mut g = golden();
    g.thumbnails.format = ImageFormat::Jpeg;
    g.thumbnails.sheet = minimal_jpeg(12, 12);
    assert_eq!(bundle::decode(&bundle::encode(&g).unwrap()).unwrap(), g);
    g.thumbnails.sheet = minimal_jpeg(12, 11);
    let err = bundle::validate(&g).unwrap_err();
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "thumbnails.sheet"));
    assert!(err.to_string().contains("12x11"), "{err}");
    g.thumbnails.sheet = vec![0xff, 0xd8, 0xff, 0xd9];
    assert!(bundle::validate(&g).is_err());
}

// ---------------------------------------------------------------------------------------------
// ArrayBlob

#[test]
fn array_constructors_check_the_element_count() {
    assert!(ArrayBlob::from_f32(&[2, 3], &[0.0; 5]).is_err());
    assert!(ArrayBlob::from_u16(&[4], &[0; 5]).is_err());
    assert!(ArrayBlob::from_f32(&[usize::MAX, 2], &[]).is_err());
    let scalar = ArrayBlob::from_f32(&[], &[1.5]).unwrap();
    assert_eq!(scalar.numel().unwrap(), 1);
}

#[test]
fn arrays_read_back_what_they_were_built_from() {
    let values = [1.0, -2.5, 65504.0, 1e-3];
    let f32s = ArrayBlob::from_f32(&[2, 2], &values).unwrap();
    assert_eq!(f32s.to_f32_vec().unwrap(), values);
    assert_eq!(f32s.data.len(), 16);
    assert_eq!(f32s.shape_usize().unwrap(), [2, 2]);
    let f16s = ArrayBlob::from_f16_lossy(&[4], &values).unwrap();
    assert_eq!(f16s.data.len(), 8);
    let widened = f16s.to_f32_vec().unwrap();
    assert_eq!(&widened[..3], &[1.0, -2.5, 65504.0]);
    assert!((widened[3] - 1e-3).abs() < 1e-6);
    let u16s = ArrayBlob::from_u16(&[3], &[1, 2, 65535]).unwrap();
    assert_eq!(u16s.to_u16_vec().unwrap(), [1, 2, 65535]);
    assert_eq!(u16s.data, [1, 0, 2, 0, 255, 255], "little-endian");
    let u32s = ArrayBlob::from_u32(&[1], &[0x0102_0304]).unwrap();
    assert_eq!(u32s.data, [4, 3, 2, 1]);
    assert_eq!(u32s.to_u32_vec().unwrap(), [0x0102_0304]);
    assert!(matches!(u32s.to_u16_vec(), Err(Error::DType { .. })));
    assert!(matches!(u16s.to_f32_vec(), Err(Error::DType { .. })));
}

#[test]
fn check_reports_rank_and_wildcards() {
    let a = ArrayBlob::from_f32(&[3, 4], &[0.0; 12]).unwrap();
    assert_eq!(
        a.check("x", &[DType::F32], &[Dim::Any("N"), Dim::Is(4)])
            .unwrap(),
        [3, 4]
    );
    assert_eq!(
        a.check("x", &[DType::F32], &[Dim::Any("N"), Dim::Is(5)])
            .unwrap_err(),
        Error::Shape {
            field: "x".into(),
            expected: vec![3, 5],
            found: vec![3, 4]
        }
    );
    let err = a.check("x", &[DType::F32], &[Dim::Any("N")]).unwrap_err();
    assert!(
        err.to_string().contains("rank-1") && err.to_string().contains("(N)"),
        "{err}"
    );
    assert_eq!(DType::F16.size_bytes(), 2);
    assert_eq!(DType::U8.to_string(), "u8");
}

// ---------------------------------------------------------------------------------------------
// Synthetic bundles

#[test]
fn synthetic_bundles_are_deterministic_in_the_spec() {
    let spec = SyntheticSpec::default();
    assert_eq!(
        synthetic_bundle(&spec).unwrap(),
        synthetic_bundle(&spec).unwrap()
    );
    let other = SyntheticSpec {
        seed: 7,
        ..spec.clone()
    };
    assert_ne!(
        synthetic_bundle(&other).unwrap().operators,
        small().operators
    );
}

#[test]
fn synthetic_default_has_the_documented_sizes() {
    let b = small();
    assert_eq!(
        (
            b.num_operators(),
            b.blocks(),
            b.block_size(),
            b.num_gallery(),
            b.num_classes()
        ),
        (4, 2, 8, 40, 4)
    );
    assert_eq!(b.prior.trunk[0].weight.shape, [16, 16]);
    assert_eq!(b.encoder.trunk[0].weight.shape, [16, 32]);
}

#[test]
fn synthetic_odd_block_size_leaves_the_last_row_and_column_zero() {
    let spec = SyntheticSpec {
        block_size: 5,
        ..SyntheticSpec::default()
    };
    let b = synthetic_bundle(&spec).unwrap();
    let psi = b.operators.to_f32_vec().unwrap();
    for block in psi.chunks_exact(25) {
        for i in 0..5 {
            assert_eq!(block[4 * 5 + i], 0.0);
            assert_eq!(block[i * 5 + 4], 0.0);
        }
        assert_ne!(block[5], 0.0, "w is drawn from U(-3, 3)");
    }
    bundle::decode(&bundle::encode(&b).unwrap()).unwrap();
}

#[test]
fn synthetic_spec_that_cannot_be_valid_is_refused() {
    for spec in [
        SyntheticSpec {
            operators: 0,
            ..SyntheticSpec::default()
        },
        SyntheticSpec {
            blocks: 1,
            block_size: 1,
            ..SyntheticSpec::default()
        },
        SyntheticSpec {
            tile_px: 0,
            ..SyntheticSpec::default()
        },
        SyntheticSpec {
            classes: 70_000,
            ..SyntheticSpec::default()
        },
    ] {
        assert!(
            matches!(synthetic_bundle(&spec), Err(Error::Invalid { .. })),
            "{spec:?}"
        );
    }
}

#[test]
fn synthetic_features_cluster_by_class() {
    let b = small();
    let d = b.feature_dim();
    let features = b.gallery.features.to_f32_vec().unwrap();
    let labels = b.gallery.labels.to_u16_vec().unwrap();
    assert!(features.iter().all(|&x| x >= 0.0), "ReLU-like features");
    let rows: Vec<&[f32]> = features.chunks_exact(d).collect();
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
    // Every image's nearest other image has its class.
    for (i, row) in rows.iter().enumerate() {
        let nearest = (0..rows.len())
            .filter(|&j| j != i)
            .min_by(|&a, &b| dist(row, rows[a]).total_cmp(&dist(row, rows[b])))
            .unwrap();
        assert_eq!(labels[nearest], labels[i], "image {i}");
    }
    // The PCA directions are orthonormal.
    let c = b.pca.components.to_f32_vec().unwrap();
    let (u, v) = c.split_at(d);
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!((dot(u, u) - 1.0).abs() < 1e-5 && (dot(v, v) - 1.0).abs() < 1e-5);
    assert!(dot(u, v).abs() < 1e-5);
}

#[test]
fn synthetic_sprite_sheet_is_a_valid_png_with_one_colour_per_class() {
    let b = small();
    let t = &b.thumbnails;
    let png = decode_png(&t.sheet);
    let (tile, columns) = (t.tile_px as usize, t.columns as usize);
    let rows = (t.count as usize).div_ceil(columns);
    assert_eq!(
        (png.width as usize, png.height as usize),
        (columns * tile, rows * tile)
    );
    let stride = 1 + 3 * png.width as usize;
    assert_eq!(png.scanlines.len(), png.height as usize * stride);
    assert!(
        png.scanlines.chunks_exact(stride).all(|row| row[0] == 0),
        "filter type none"
    );

    let pixel = |x: usize, y: usize| {
        let at = y * stride + 1 + 3 * x;
        [
            png.scanlines[at],
            png.scanlines[at + 1],
            png.scanlines[at + 2],
        ]
    };
    let labels = b.gallery.labels.to_u16_vec().unwrap();
    let mut colour_of_class = std::collections::BTreeMap::new();
    for (i, &label) in labels.iter().enumerate() {
        let (x0, y0) = ((i % columns) * tile, (i / columns) * tile);
        let colour = pixel(x0, y0);
        for y in y0..y0 + tile {
            for x in x0..x0 + tile {
                assert_eq!(pixel(x, y), colour, "tile {i} is one colour");
            }
        }
        assert_eq!(
            *colour_of_class.entry(label).or_insert(colour),
            colour,
            "tile {i}"
        );
    }
    let distinct: std::collections::BTreeSet<_> = colour_of_class.values().collect();
    assert_eq!(
        distinct.len(),
        b.num_classes(),
        "classes have distinct colours"
    );
}

#[test]
fn large_sprite_sheet_spans_several_stored_blocks() {
    let spec = SyntheticSpec {
        gallery: 400,
        tile_px: 16,
        ..SyntheticSpec::default()
    };
    let b = synthetic_bundle(&spec).unwrap();
    let png = decode_png(&b.thumbnails.sheet);
    assert_eq!((png.width, png.height), (320, 320));
    assert!(png.stored_blocks > 1, "{} block(s)", png.stored_blocks);
    assert_eq!(png.scanlines.len(), 320 * (1 + 3 * 320));
}

// ---------------------------------------------------------------------------------------------
// Hostile bundles: one test per finding of the bounded-decoding review.

/// The golden payload with `extra` bytes of padding after the thumbnail sheet's PNG (which
/// `validate` allows), so that the payload is as large as a test needs.
fn padded_golden(extra: usize) -> (Bundle, Vec<u8>) {
    let mut b = golden();
    b.thumbnails.sheet.extend(std::iter::repeat_n(0_u8, extra));
    let payload = raw_payload(&b);
    (b, payload)
}

#[test]
fn forged_string_length_in_a_payload_over_4_mib_allocates_nothing() {
    // Before: a payload over 4 MiB got bincode's 2 GiB limit, so a string length of 2^31 - 1
    // made the decoder take `vec![0; 2^31 - 1]` before failing (unnoticed natively, where the
    // zeroed pages are lazy; ~2 GiB reserved in wasm). Now the length is checked against the
    // bytes left first.
    let (b, payload) = padded_golden(5 << 20);
    assert!(payload.len() > 4 << 20);
    let forged_len = (1_u64 << 31) - 1;
    let forged = splice_varint(&payload, 0, b.metadata.dataset.len() as u64, forged_len);
    let err = bundle::decode(&frame(&forged)).unwrap_err();
    let Error::Malformed { reason } = &err else {
        panic!("expected Malformed, got {err:?}");
    };
    assert!(
        reason.contains("`metadata.dataset` claims 2147483647 elements"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("of the {} byte payload remain", forged.len())),
        "{reason}"
    );
    assert_no_large_allocation();
}

#[test]
fn every_forged_length_is_bounded_by_the_bytes_left_not_by_a_fallback_limit() {
    // Before: above 256 MiB the limit fell back to usize::MAX. Now there is no limit table: the
    // budget of every length is what remains of this payload, whatever its size, as the message
    // shows. Forged counts of a list (class names), a byte blob and a shape, each claiming 2^40.
    let g = golden();
    let payload = &GOLDEN[HEADER_LEN..];
    let at_operators = encoded_len(&g.metadata);
    let shape_at = at_operators + encoded_len(&g.operators.dtype);
    let blob_at = shape_at + encoded_len(&g.operators.shape);
    for (offset, old, field) in [
        (shape_at, g.operators.shape.len() as u64, "operators"),
        (blob_at, g.operators.data.len() as u64, "operators"),
    ] {
        let forged = splice_varint(payload, offset, old, 1 << 40);
        let err = bundle::decode(&frame(&forged)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("`{field}` claims 1099511627776 elements")),
            "{message}"
        );
        let remaining = forged.len() - offset - 9;
        assert!(
            message.contains(&format!("only {remaining} of the")),
            "{message}"
        );
    }
    assert_no_large_allocation();
}

#[test]
fn a_long_class_list_whose_bytes_are_present_is_capped_before_allocating() {
    // A count that the payload could hold (one byte per empty name) but over C's cap: refused
    // by the count check before the list is allocated.
    let mut b = golden();
    b.gallery.class_names = vec![String::new(); limits::MAX_CLASSES + 1];
    let err = bundle::decode(&frame(&raw_payload(&b))).unwrap_err();
    assert_eq!(
        err,
        Error::OverLimit {
            field: "gallery.class_names".into(),
            what: "length".into(),
            found: 4097,
            limit: 4096,
        }
    );
    assert_eq!(
        err.to_string(),
        "field `gallery.class_names`: length is 4097, over the limit of 4096"
    );
}

#[test]
fn oversized_strings_are_over_their_caps() {
    let mut b = golden();
    b.gallery.class_names[0] = "x".repeat(limits::MAX_CLASS_NAME_BYTES + 1);
    let err = bundle::decode(&frame(&raw_payload(&b))).unwrap_err();
    assert!(
        err.to_string()
            .contains("`gallery.class_names`: length is 257, over the limit of 256"),
        "{err}"
    );
    assert!(matches!(bundle::validate(&b), Err(Error::OverLimit { .. })));

    let mut b = golden();
    b.metadata.config_toml = "#".repeat(limits::MAX_CONFIG_BYTES + 1);
    let err = bundle::validate(&b).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `metadata.config_toml`: bytes is 1048577, over the limit of 1048576"
    );
    let err = bundle::decode(&frame(&raw_payload(&b))).unwrap_err();
    assert!(matches!(err, Error::OverLimit { .. }), "{err}");
}

#[test]
fn a_single_2048_block_or_100000_operators_are_over_the_caps() {
    // Before: both validated (they are self-consistent) and froze the viewer's tab.
    let mut b = golden();
    b.operators = ArrayBlob::from_f32(&[1, 1, 2048, 2048], &vec![0.0; 2048 * 2048]).unwrap();
    assert_eq!(
        bundle::validate(&b).unwrap_err().to_string(),
        "field `operators`: block size n is 2048, over the limit of 256"
    );
    let mut b = golden();
    b.operators = ArrayBlob::from_f32(&[100_000, 1, 1, 1], &vec![0.0; 100_000]).unwrap();
    assert_eq!(
        bundle::validate(&b).unwrap_err().to_string(),
        "field `operators`: operators M is 100000, over the limit of 1024"
    );
}

/// A PNG of just a signature and an IHDR that claims `width × height` 8-bit RGB pixels.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    png.extend_from_slice(&13_u32.to_be_bytes());
    png.extend_from_slice(b"IHDR");
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    png
}

#[test]
fn a_thumbnail_sheet_that_decodes_to_a_gigapixel_is_refused_from_its_header() {
    // Before: the sheet only had to be large enough for the tiles, so a small PNG that decodes
    // to 1 GiB was accepted and handed to the browser's decoder.
    let mut b = golden();
    b.thumbnails.sheet = png_header_only(16_384, 16_384);
    assert_eq!(
        bundle::validate(&b).unwrap_err().to_string(),
        "field `thumbnails.sheet`: PNG image is 16384x16384 = 268435456 pixels, over the limit \
         of 67108864 pixels"
    );
    let mut b = golden();
    b.thumbnails.format = ImageFormat::Jpeg;
    b.thumbnails.sheet = minimal_jpeg(65_535, 65_535);
    assert!(
        bundle::validate(&b)
            .unwrap_err()
            .to_string()
            .contains("JPEG image is 65535x65535 = 4294836225 pixels, over the limit"),
    );
}

#[test]
fn an_i8_scale_that_dequantises_to_infinity_is_invalid() {
    let mut b = golden();
    let layer = &mut b.prior.trunk[0];
    let rows = layer.weight.shape[0] as usize;
    layer.weight = ArrayBlob::from_i8(
        &[rows, layer.weight.shape[1] as usize],
        &vec![127; layer.weight.data.len() / layer.weight.dtype.size_bytes()],
    )
    .unwrap();
    let mut scales = vec![0.01_f32; rows];
    scales[1] = 3.0e38; // finite, but 3e38 · 127 is not
    layer.weight_scale = Some(ArrayBlob::from_f32(&[rows], &scales).unwrap());
    assert_eq!(
        bundle::validate(&b).unwrap_err().to_string(),
        "field `prior.trunk[0].weight_scale`: row 1 has scale 300000000000000000000000000000000000000, \
         which dequantises to infinity"
    );
}

#[test]
fn pca_bases_the_viewer_refuses_do_not_validate() {
    // Before: validate checked shapes and finiteness only; the viewer's Pca::from_parts then
    // refused non-orthonormal axes or ascending variances, after the bundle had "opened".
    let mut b = golden();
    let d = b.feature_dim();
    let mut components = vec![0.0_f32; 2 * d];
    components[0] = 1.0;
    components[d] = 1.0; // both axes the same direction
    b.pca.components = ArrayBlob::from_f32(&[2, d], &components).unwrap();
    b.pca.explained_variance = ArrayBlob::from_f32(&[2], &[2.0, 1.0]).unwrap();
    let err = bundle::validate(&b).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `pca`: the first two axes cannot be plotted"
    );
    // Why is the PCA's own error, attached as the source rather than copied into the message.
    let Error::Unusable { source, .. } = &err else {
        panic!("expected Unusable, got {err:?}");
    };
    let chain = mclr_shared::error_chain(&err);
    assert_eq!(chain, format!("{err}: {source}"));
    assert!(chain.contains("orthonormal"), "{chain}");

    let mut b = golden();
    let p = b.pca.explained_variance.shape[0] as usize;
    let mut variance = vec![1.0_f32; p];
    variance[p - 1] = 5.0;
    b.pca.explained_variance = ArrayBlob::from_f32(&[p], &variance).unwrap();
    let message = mclr_shared::error_chain(&bundle::validate(&b).unwrap_err());
    assert!(message.contains("not descending"), "{message}");

    let mut b = golden();
    let d = b.feature_dim();
    b.pca.components = ArrayBlob::from_f32(&[d + 1, d], &vec![0.0; (d + 1) * d]).unwrap();
    b.pca.explained_variance = ArrayBlob::from_f32(&[d + 1], &vec![0.0; d + 1]).unwrap();
    assert_eq!(
        bundle::validate(&b).unwrap_err().to_string(),
        format!(
            "field `pca.components`: has {} components but the features only have {d} dimensions",
            d + 1
        )
    );
}

#[test]
fn both_golden_versions_still_decode_with_the_bounded_reader() {
    // Compatibility of the hand-written reader with bincode's writer: every golden and synthetic
    // bundle, v1 and v2, decodes to what bincode encoded.
    assert_eq!(bundle::decode(GOLDEN).unwrap(), golden());
    let v1 = bundle::decode(GOLDEN_V1).unwrap();
    assert_eq!(v1.num_operators(), golden().num_operators());
    let s = small();
    assert_eq!(bundle::decode(&bundle::encode(&s).unwrap()).unwrap(), s);
}
