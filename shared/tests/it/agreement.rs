//! The prior-sample neighbour agreement: its definition on synthetic bundles, and the shipped demo
//! model's figure (the viewer's promise that moving an image along the learned operators keeps its
//! class among the nearest gallery images).

use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};
use mclr_shared::bundle::{self, ArrayBlob};
use mclr_shared::operators::{bundle_neighbour_agreement, spread_anchors};

#[test]
fn anchors_are_spread_evenly_and_never_repeat() {
    assert_eq!(spread_anchors(10, 4), [0, 2, 5, 7]);
    assert_eq!(spread_anchors(3, 5), [0, 1, 2]);
    let anchors = spread_anchors(10_000, 500);
    assert_eq!(anchors.len(), 500);
    assert!(anchors.windows(2).all(|w| w[1] - w[0] == 20));
}

#[test]
fn without_operators_the_moved_share_equals_the_unmoved_share() {
    let mut b = synthetic_bundle(&SyntheticSpec::default()).unwrap();
    // Ψ = 0: every T(c) is the identity, so every moved query is the anchor itself.
    let shape: Vec<usize> = b.operators.shape.iter().map(|&s| s as usize).collect();
    let zeros = vec![0.0; shape.iter().product()];
    b.operators = ArrayBlob::from_f32(&shape, &zeros).unwrap();
    let a = bundle_neighbour_agreement(&b, 40, 8, 8, 1).unwrap();
    assert_eq!(a.moved, a.unmoved);
    assert_eq!(a.ratio(), 1.0);
    assert_eq!((a.anchors, a.samples, a.k), (40, 8, 8));
    // The synthetic gallery is 4 separated class clusters of 10: with the anchor left out, all 8
    // nearest images of an unmoved anchor are of its class.
    assert_eq!(a.unmoved, 1.0);
}

#[test]
fn bad_settings_are_refused_with_what_was_asked() {
    let b = synthetic_bundle(&SyntheticSpec::default()).unwrap();
    for (anchors, samples, k) in [(0, 8, 8), (10, 0, 8), (10, 8, 0), (10, 8, 40)] {
        let err = bundle_neighbour_agreement(&b, anchors, samples, k, 0).unwrap_err();
        assert!(
            err.to_string().contains("0 < k < gallery size"),
            "{anchors} {samples} {k}: {err}"
        );
    }
}

/// The acceptance figure for the shipped model: over 500 fixed test anchors with 8 prior
/// samples each, the share of the 8 nearest gallery neighbours of T(c)z carrying the anchor's
/// label is at least 90 % of the same share for the unmoved z.
#[test]
fn the_shipped_demo_keeps_nine_tenths_of_its_neighbours_labels_under_prior_samples() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../www/demo.mclr");
    #[allow(clippy::disallowed_methods)] // a native test reading the repository's file
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let b = bundle::decode(&bytes).unwrap();
    assert!(
        b.num_gallery() >= 10_000,
        "the shipped gallery has {} images",
        b.num_gallery()
    );
    let a = bundle_neighbour_agreement(&b, 500, 8, 8, 0).unwrap();
    println!(
        "shipped demo: moved {:.4}, unmoved {:.4}, ratio {:.4}",
        a.moved,
        a.unmoved,
        a.ratio()
    );
    assert!(a.unmoved > 0.1, "no better than chance: {a:?}");
    assert!(a.ratio() >= 0.9, "{a:?}");
}
