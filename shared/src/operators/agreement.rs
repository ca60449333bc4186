//! Do the learned prior's moves keep what an image depicts? For a set of anchor images, the share
//! of the `k` nearest gallery neighbours of `T(c) z` (c drawn from the learned prior at z, with
//! the model's soft threshold) that carry the anchor's label, against the same share for `z`
//! unmoved. Neighbours are found as the viewer finds them (cosine similarity over the gallery,
//! the anchor itself left out), so the figure describes what a person sees when sampling the prior
//! in the viewer.

use super::{LaplaceSampler, Operators, PriorNetwork};
use crate::geometry::{KnnIndex, Metric, Neighbour};
use crate::{Error, Result};

/// What [`neighbour_agreement`] measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeighbourAgreement {
    /// Mean share of the `k` neighbours of the moved features that carry the anchor's label.
    pub moved: f64,
    /// Mean share of the `k` neighbours of the unmoved anchors that carry the anchor's label.
    pub unmoved: f64,
    /// Anchors measured.
    pub anchors: usize,
    /// Prior samples per anchor.
    pub samples: usize,
    /// Neighbours per query.
    pub k: usize,
}

impl NeighbourAgreement {
    /// `moved / unmoved`: 1 when the moves keep the neighbourhoods' labels as well as standing
    /// still does (0 when the unmoved share is 0).
    pub fn ratio(&self) -> f64 {
        if self.unmoved > 0.0 {
            self.moved / self.unmoved
        } else {
            0.0
        }
    }
}

/// `count` anchors spread evenly over a gallery of `len` images (rows `i · len / count`), all of
/// them when `count >= len`: a fixed, seed-free choice that covers every part of a gallery
/// stored in dataset order.
pub fn spread_anchors(len: usize, count: usize) -> Vec<usize> {
    if count >= len {
        return (0..len).collect();
    }
    (0..count).map(|i| i * len / count).collect()
}

/// The label agreement of prior samples (see the module docs): for each anchor row `a` of
/// `index`, `samples` coefficient draws from `prior` at `z_a` (sampler seed `seed + a`,
/// threshold `threshold`), each moved feature's `k` nearest gallery rows other than `a`.
///
/// # Errors
/// [`Error::Invalid`] when `labels` does not match the gallery, an anchor is out of range,
/// there are no anchors, `samples` or `k` is 0, or `k` is not below the gallery size; the
/// operators', prior's and index's own errors (a dimension mismatch, a non-finite threshold).
#[allow(clippy::too_many_arguments)] // the measurement's inputs, each named in the docs
pub fn neighbour_agreement(
    index: &KnnIndex,
    labels: &[u16],
    operators: &Operators,
    prior: &PriorNetwork,
    threshold: f32,
    anchors: &[usize],
    samples: usize,
    k: usize,
    seed: u64,
) -> Result<NeighbourAgreement> {
    let (n, d) = (index.len(), index.dim());
    if labels.len() != n {
        return Err(Error::invalid(
            "labels",
            format!("{} labels for a gallery of {n}", labels.len()),
        ));
    }
    if anchors.is_empty() || samples == 0 || k == 0 || k >= n {
        return Err(Error::invalid(
            "agreement settings",
            format!(
                "need anchors, samples and 0 < k < gallery size; got {} anchors, {samples} \
                 samples, k = {k}, {n} images",
                anchors.len()
            ),
        ));
    }
    let share = |hits: &[Neighbour], anchor: usize, label: u16| -> f64 {
        let kept = hits
            .iter()
            .filter(|hit| hit.index != anchor)
            .take(k)
            .filter(|hit| labels.get(hit.index) == Some(&label))
            .count();
        kept as f64 / k as f64
    };
    let (mut moved, mut unmoved) = (0.0, 0.0);
    for &anchor in anchors {
        let (Some(z), Some(&label)) = (
            index.features().get(anchor * d..(anchor + 1) * d),
            labels.get(anchor),
        ) else {
            return Err(Error::invalid(
                "anchor",
                format!("{anchor} is not below {n}"),
            ));
        };
        let params = prior.prior(z)?;
        let coefficients = LaplaceSampler::new(seed.wrapping_add(anchor as u64)).sample(
            &params.loc,
            &params.logscale,
            threshold,
            samples,
        )?;
        let moved_features = operators.apply(&coefficients, z)?;
        for hits in index.search_batch(&moved_features, k + 1)? {
            moved += share(&hits, anchor, label);
        }
        unmoved += share(&index.search(z, k + 1)?, anchor, label);
    }
    let count = anchors.len() as f64;
    Ok(NeighbourAgreement {
        moved: moved / (count * samples as f64),
        unmoved: unmoved / count,
        anchors: anchors.len(),
        samples,
        k,
    })
}

/// [`neighbour_agreement`] over a bundle's own gallery, operators, prior and threshold, at
/// [`spread_anchors`]`(N, anchors)`.
///
/// # Errors
/// As [`neighbour_agreement`], and the bundle's decoding errors (a prior stored in a way that
/// cannot be read back).
pub fn bundle_neighbour_agreement(
    bundle: &crate::bundle::Bundle,
    anchors: usize,
    samples: usize,
    k: usize,
    seed: u64,
) -> Result<NeighbourAgreement> {
    let operators = Operators::new(
        bundle.num_operators(),
        bundle.blocks(),
        bundle.block_size(),
        bundle.operators.to_f32_vec()?,
    )?;
    let prior = PriorNetwork::new(bundle.prior.to_mlp("prior")?);
    let index = KnnIndex::new(
        bundle.gallery.features.to_f32_vec()?,
        bundle.feature_dim(),
        Metric::Cosine,
    )?;
    let labels = bundle.gallery.labels.to_u16_vec()?;
    neighbour_agreement(
        &index,
        &labels,
        &operators,
        &prior,
        bundle.metadata.threshold,
        &spread_anchors(index.len(), anchors),
        samples,
        k,
        seed,
    )
}
