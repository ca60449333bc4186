//! A decoded bundle digested into what the viewer draws and computes with: features as f32, the
//! 2-D PCA coordinates of every gallery image, the operators, and the operator list in display
//! order. Built once per loaded bundle; everything after trusts its shapes.

use mclr_shared::bundle::{Bundle, RunMetadata, RunRecord, Thumbnails};
use mclr_shared::geometry::Pca;
use mclr_shared::operators::{CoefficientEncoder, Operators, PriorNetwork};

use crate::error::{Result, ViewerError};

/// Most bundle bytes the viewer decodes (512 MiB): larger than any gallery a browser tab can
/// hold comfortably, small enough to refuse a runaway download early.
pub const MAX_BUNDLE_BYTES: u64 = 512 << 20;

/// Most multiply-adds of one CPU step over all blocks, K·n³ (8 Mi): an expm per block per frame,
/// and the K eigenvalue problems of the inspect view, run on the page's only thread. The shared
/// format allows larger operators ([`mclr_shared::bundle::limits`]); the viewer refuses them with
/// a message rather than freezing the tab.
pub const MAX_BLOCK_WORK: u64 = 1 << 23;

/// Most gallery values N·d (64 Mi): a kNN search over the gallery on every step of a path.
pub const MAX_GALLERY_WORK: u64 = 1 << 26;

/// Fails with [`mclr_shared::Error::OverLimit`] when the bundle is larger than the viewer animates.
fn check_animatable(bundle: &Bundle) -> Result<()> {
    let as_u64 = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
    let (k, n) = (as_u64(bundle.blocks()), as_u64(bundle.block_size()));
    let block_work = k.saturating_mul(n.saturating_mul(n).saturating_mul(n));
    if block_work > MAX_BLOCK_WORK {
        return Err(ViewerError::Bundle(mclr_shared::Error::OverLimit {
            field: "operators".to_owned(),
            what: format!("K·n³ = {k}·{n}³ multiply-adds per step"),
            found: block_work,
            limit: MAX_BLOCK_WORK,
        }));
    }
    let gallery_work = as_u64(bundle.num_gallery()).saturating_mul(as_u64(bundle.feature_dim()));
    if gallery_work > MAX_GALLERY_WORK {
        return Err(ViewerError::Bundle(mclr_shared::Error::OverLimit {
            field: "gallery.features".to_owned(),
            what: "N·d values to search per step".to_owned(),
            found: gallery_work,
            limit: MAX_GALLERY_WORK,
        }));
    }
    Ok(())
}

/// One loaded bundle, ready for the views.
#[derive(Debug, Clone)]
pub struct Session {
    /// Name shown in the header (the file name of the bundle).
    pub name: String,
    /// How the run was produced.
    pub metadata: RunMetadata,
    /// The operators Ψ.
    pub operators: Operators,
    /// Gallery features, N × d, f32.
    pub features: Vec<f32>,
    /// Class of each gallery image.
    pub labels: Vec<u16>,
    /// Name of each class.
    pub class_names: Vec<String>,
    /// The plotting projection (the bundle's first two principal axes).
    pub pca: Pca,
    /// PCA coordinates of every gallery image.
    pub points: Vec<[f32; 2]>,
    /// Frobenius norm of each operator (from the bundle's statistics).
    pub norms: Vec<f32>,
    /// Fraction of training pairs that used each operator.
    pub usage: Vec<f32>,
    /// Mean |c_m| under the prior per class, C × M.
    pub heatmap: Vec<f32>,
    /// Operator indices by decreasing norm: the order of the operator list.
    pub order: Vec<usize>,
    /// The thumbnail sprite sheet and its layout; the sheet itself may be a file beside the
    /// bundle ([`Thumbnails::sheet_file`]), which the browser fetches.
    pub thumbnails: Thumbnails,
    /// The run around the model: when it was saved, whether it is a live snapshot, and the
    /// training logs for the curves panel.
    pub run: RunRecord,
    /// The prior p(c | z0), or why it cannot be used (the rest of the viewer works without it).
    pub prior: std::result::Result<PriorNetwork, mclr_shared::Error>,
    /// The coefficient encoder q(c | z0, z1), or why it cannot be used.
    pub encoder: std::result::Result<CoefficientEncoder, mclr_shared::Error>,
}

impl Session {
    /// Decodes `bytes` (at most [`MAX_BUNDLE_BYTES`]) and digests the bundle.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        let bundle = mclr_shared::bundle::decode_with_limit(bytes, MAX_BUNDLE_BYTES)
            .map_err(ViewerError::Bundle)?;
        Self::from_bundle(bundle, name)
    }

    /// Digests a bundle. It is [`mclr_shared::bundle::validate`]d again here, so a bundle built in
    /// memory gets the same checks as a decoded one.
    pub fn from_bundle(bundle: Bundle, name: &str) -> Result<Self> {
        mclr_shared::bundle::validate(&bundle).map_err(ViewerError::Bundle)?;
        check_animatable(&bundle)?;
        let (m, k, n, d) = (
            bundle.num_operators(),
            bundle.blocks(),
            bundle.block_size(),
            bundle.feature_dim(),
        );
        let operators =
            Operators::new(m, k, n, bundle.operators.to_f32_vec().map_err(bad)?).map_err(bad)?;
        let features = bundle.gallery.features.to_f32_vec().map_err(bad)?;
        let labels = bundle.gallery.labels.to_u16_vec().map_err(bad)?;

        let components = bundle.pca.components.to_f32_vec().map_err(bad)?;
        let variance = bundle.pca.explained_variance.to_f32_vec().map_err(bad)?;
        let pca = Pca::from_parts(
            bundle.pca.mean.to_f32_vec().map_err(bad)?,
            components.get(..2 * d).unwrap_or_default().to_vec(),
            variance.get(..2).unwrap_or_default().to_vec(),
            d,
        )
        .map_err(bad)?;
        let points = pca
            .project(&features)
            .map_err(bad)?
            .chunks_exact(2)
            .map(|p| [p[0], p[1]])
            .collect();

        let norms = bundle.stats.norms.to_f32_vec().map_err(bad)?;
        let usage = bundle.stats.usage.to_f32_vec().map_err(bad)?;
        let heatmap = bundle.stats.class_heatmap.to_f32_vec().map_err(bad)?;
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| {
            let (na, nb) = (norms.get(a), norms.get(b));
            nb.partial_cmp(&na)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        });

        let prior = bundle.prior.to_mlp("prior").map(PriorNetwork::new);

        let encoder = bundle
            .encoder
            .to_mlp("encoder")
            .and_then(CoefficientEncoder::new);

        Ok(Self {
            prior,
            encoder,
            name: name.to_owned(),
            metadata: bundle.metadata,
            operators,
            features,
            labels,
            class_names: bundle.gallery.class_names,
            pca,
            points,
            norms,
            usage,
            heatmap,
            order,
            thumbnails: bundle.thumbnails,
            run: bundle.run,
        })
    }

    /// N, the number of gallery images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the gallery is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// d, the feature dimension.
    pub fn dim(&self) -> usize {
        self.operators.dim()
    }

    /// M, the number of operators.
    pub fn num_operators(&self) -> usize {
        self.operators.num_operators()
    }

    /// Feature of gallery image `i`.
    pub fn feature(&self, i: usize) -> Option<&[f32]> {
        let d = self.dim();
        self.features
            .get(i.checked_mul(d)?..(i + 1).checked_mul(d)?)
    }

    /// The coefficients that carry gallery image `a` to image `b`: the location of the encoder's
    /// posterior q(c | z_a, z_b), so that T(c) z_a is the model's estimate of z_b.
    pub fn transport_coefficients(&self, a: usize, b: usize) -> Result<Vec<f32>> {
        let encoder = self
            .encoder
            .as_ref()
            .map_err(|source| ViewerError::Unusable {
                part: "encoder",
                source: source.clone(),
            })?;
        let missing = |i: usize| {
            ViewerError::Compute(mclr_shared::Error::invalid(
                "image",
                format!("{i} is not below {}", self.len()),
            ))
        };
        let za = self.feature(a).ok_or_else(|| missing(a))?;
        let zb = self.feature(b).ok_or_else(|| missing(b))?;
        Ok(encoder.posterior(za, zb)?.loc)
    }

    /// PCA coordinates of a feature vector.
    pub fn project(&self, z: &[f32]) -> Result<[f32; 2]> {
        let p = self.pca.project(z)?;
        match p.as_slice() {
            [x, y] => Ok([*x, *y]),
            _ => Err(ViewerError::Compute(mclr_shared::Error::shape(
                "projection",
                &[2],
                &[p.len()],
            ))),
        }
    }
}

/// A shared error on a bundle that passed validation still means the bundle is unusable.
fn bad(error: mclr_shared::Error) -> ViewerError {
    ViewerError::Bundle(error)
}

#[cfg(test)]
mod tests {
    use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};

    use super::*;

    #[test]
    fn a_bundle_too_heavy_to_animate_is_refused_with_a_message() {
        // One 256 × 256 block: valid for the format (n ≤ 256), but 16.7 M multiply-adds of expm
        // per frame on the page's only thread.
        let spec = SyntheticSpec {
            operators: 1,
            blocks: 1,
            block_size: 256,
            hidden: 4,
            ..SyntheticSpec::default()
        };
        let bundle = synthetic_bundle(&spec).unwrap();
        let err = Session::from_bundle(bundle, "heavy.mclr").unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("This bundle cannot be opened: its operators has K·n³"),
            "{message}"
        );
        assert!(
            message.contains("16777216, more than the 8388608"),
            "{message}"
        );
    }

    #[test]
    fn a_synthetic_bundle_is_digested_with_consistent_shapes() {
        let bundle = synthetic_bundle(&SyntheticSpec::default()).unwrap();
        let bytes = mclr_shared::bundle::encode(&bundle).unwrap();
        let session = Session::from_bytes(&bytes, "synthetic.mclr").unwrap();
        assert_eq!(session.len(), 40);
        assert_eq!(session.points.len(), 40);
        assert_eq!(session.dim(), 16);
        assert_eq!(session.order.len(), 4);
        let norms: Vec<f32> = session.order.iter().map(|&m| session.norms[m]).collect();
        assert!(norms.windows(2).all(|w| w[0] >= w[1]), "{norms:?}");
        let p = session.project(session.feature(3).unwrap()).unwrap();
        assert_eq!(p, session.points[3]);
    }

    /// Files written by every released format version open in the viewer.
    #[test]
    fn golden_bundles_of_every_format_version_open() {
        for (version, bytes) in [
            (
                1,
                &include_bytes!("../../shared/tests/golden/bundle_v1.mclr")[..],
            ),
            (
                2,
                &include_bytes!("../../shared/tests/golden/bundle_v2.mclr")[..],
            ),
            (
                3,
                &include_bytes!("../../shared/tests/golden/bundle_v3.mclr")[..],
            ),
        ] {
            let session = Session::from_bytes(bytes, "golden.mclr")
                .unwrap_or_else(|e| panic!("format v{version}: {e}"));
            assert_eq!(session.len(), 8, "format v{version}");
            assert_eq!(session.num_operators(), 2, "format v{version}");
            assert_eq!(session.points.len(), 8, "format v{version}");
        }
    }

    #[test]
    fn transport_coefficients_are_the_encoder_posterior_location() {
        let bundle = synthetic_bundle(&SyntheticSpec::default()).unwrap();
        let session = Session::from_bundle(bundle, "s").unwrap();
        let c = session.transport_coefficients(2, 5).unwrap();
        let encoder = session.encoder.as_ref().unwrap();
        let expected = encoder
            .posterior(session.feature(2).unwrap(), session.feature(5).unwrap())
            .unwrap()
            .loc;
        assert_eq!(c, expected);
        assert_eq!(c.len(), session.num_operators());
        assert!(session.transport_coefficients(2, 999).is_err());
    }

    #[test]
    fn a_corrupted_bundle_is_a_bundle_error() {
        let bundle = synthetic_bundle(&SyntheticSpec::default()).unwrap();
        let mut bytes = mclr_shared::bundle::encode(&bundle).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let error = Session::from_bytes(&bytes, "x").unwrap_err();
        assert!(matches!(error, ViewerError::Bundle(_)), "{error:?}");
        assert!(error.to_string().contains("corrupted"), "{error}");
    }
}
