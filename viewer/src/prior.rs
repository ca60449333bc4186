//! Sampling the learned prior at the anchor: S coefficient vectors c ~ p(c | z0) from a seeded
//! sampler, the transported features T(c) z0, where they land in the scatter, the nearest gallery
//! image of each other than the anchor, and the fraction that keep the anchor's label.

use mclr_shared::geometry::Neighbour;
use mclr_shared::operators::LaplaceSampler;

use crate::engine::{Engine, GalleryIndex};
use crate::error::{Result, ViewerError};
use crate::session::Session;

/// Samples drawn per cloud when the link does not say (S).
pub const PRIOR_SAMPLES: usize = 64;

/// One cloud of prior samples around an anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorCloud {
    /// The anchor the samples start from.
    pub anchor: usize,
    /// The sampler's seed.
    pub seed: u64,
    /// S, the number of samples.
    pub samples: usize,
    /// The sampled coefficients, S × M.
    pub coefficients: Vec<f32>,
    /// PCA position of each transported feature.
    pub points: Vec<[f32; 2]>,
    /// Nearest gallery image (cosine) of each transported feature other than the anchor itself
    /// (`usize::MAX` when the gallery holds no other image).
    pub nearest: Vec<usize>,
    /// Fraction of samples whose nearest image (other than the anchor) has the anchor's label.
    pub keep_label: f32,
}

impl PriorCloud {
    /// Draws `samples` coefficient vectors from the prior at gallery image `anchor` with `seed`
    /// (the bundle's soft threshold ζ applied) and follows each to its nearest gallery image.
    pub async fn sample(
        engine: &Engine,
        session: &Session,
        gallery: &GalleryIndex,
        anchor: usize,
        seed: u64,
        samples: usize,
    ) -> Result<Self> {
        let prior = session
            .prior
            .as_ref()
            .map_err(|source| ViewerError::Unusable {
                part: "prior",
                source: source.clone(),
            })?;
        let z0 = session.feature(anchor).ok_or_else(|| {
            ViewerError::Compute(mclr_shared::Error::invalid(
                "anchor",
                format!("{anchor} is not below {}", session.len()),
            ))
        })?;
        let params = prior.prior(z0)?;
        let coefficients = LaplaceSampler::new(seed).sample(
            &params.loc,
            &params.logscale,
            session.metadata.threshold,
            samples,
        )?;
        let transport = engine.transport(&session.operators, &coefficients).await?;
        let moved = engine.apply(&transport, z0).await?;
        let points = moved
            .chunks_exact(session.dim().max(1))
            .map(|z| session.project(z))
            .collect::<Result<Vec<_>>>()?;
        // The gallery holds the anchor itself, and small moves of z0 would all land on it: as in
        // the paper's augmentation figure, each sample shows its nearest image other than the
        // anchor.
        let nearest: Vec<usize> = engine
            .knn(gallery, &moved, 2)
            .await?
            .iter()
            .map(|hits| nearest_other_than(hits, anchor))
            .collect();
        let label = session.labels.get(anchor).copied();
        let kept = nearest
            .iter()
            .filter(|&&i| session.labels.get(i).copied() == label)
            .count();
        // Sample counts are small; the ratio is for display.
        #[allow(clippy::cast_precision_loss)]
        let keep_label = if nearest.is_empty() {
            0.0
        } else {
            kept as f32 / nearest.len() as f32
        };
        Ok(Self {
            anchor,
            seed,
            samples,
            coefficients,
            points,
            nearest,
            keep_label,
        })
    }
}

/// The best of `hits` (best first) that is not `anchor`, or `usize::MAX` when there is none.
fn nearest_other_than(hits: &[Neighbour], anchor: usize) -> usize {
    hits.iter()
        .map(|n| n.index)
        .find(|&i| i != anchor)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use mclr_shared::geometry::{KnnIndex, Metric};

    use super::*;
    use crate::engine::tests::{block_on, synthetic_session};

    /// The synthetic prior's scales are below its soft threshold, which would zero every sample;
    /// without the threshold the samples move.
    fn session_without_threshold() -> Session {
        let mut session = synthetic_session();
        session.metadata.threshold = 0.0;
        session
    }

    #[test]
    fn the_cloud_follows_the_shared_prior_sampler_and_transport() {
        let session = session_without_threshold();
        let engine = Engine::cpu("test");
        let gallery = engine
            .upload_gallery(&session.features, session.dim())
            .unwrap();
        let cloud = block_on(PriorCloud::sample(&engine, &session, &gallery, 9, 42, 16)).unwrap();

        let z0 = session.feature(9).unwrap();
        let params = session.prior.as_ref().unwrap().prior(z0).unwrap();
        let c = LaplaceSampler::new(42)
            .sample(
                &params.loc,
                &params.logscale,
                session.metadata.threshold,
                16,
            )
            .unwrap();
        assert_eq!(cloud.coefficients, c);
        assert!(c.iter().any(|&x| x != 0.0));
        let moved = session.operators.apply(&c, z0).unwrap();
        let index = KnnIndex::new(session.features.clone(), session.dim(), Metric::Cosine).unwrap();
        for (s, z) in moved.chunks_exact(session.dim()).enumerate() {
            assert_eq!(cloud.points[s], session.project(z).unwrap());
            let hits = index.search(z, 2).unwrap();
            let expected = if hits[0].index == 9 { hits[1] } else { hits[0] };
            assert_eq!(cloud.nearest[s], expected.index);
        }
        let label = session.labels[9];
        let kept = cloud
            .nearest
            .iter()
            .filter(|&&i| session.labels[i] == label)
            .count();
        assert!((cloud.keep_label - kept as f32 / 16.0).abs() < 1e-6);
    }

    /// The gallery row most cosine-similar to `query`, `anchor` left out, by brute force.
    fn brute_force_nearest_other(session: &Session, query: &[f32], anchor: usize) -> usize {
        let norm = |v: &[f32]| {
            v.iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE)
        };
        let cosine = |row: &[f32]| {
            row.iter().zip(query).map(|(a, b)| a * b).sum::<f32>() / (norm(row) * norm(query))
        };
        (0..session.len())
            .filter(|&i| i != anchor)
            .max_by(|&a, &b| {
                let (sa, sb) = (
                    cosine(session.feature(a).unwrap()),
                    cosine(session.feature(b).unwrap()),
                );
                // Ties go to the lower index.
                sa.total_cmp(&sb).then(b.cmp(&a))
            })
            .unwrap()
    }

    #[test]
    fn a_sample_never_shows_the_anchor_as_its_nearest_image() {
        // With the soft threshold on, every synthetic sample is zeroed, so T(c) z0 = z0 and
        // the nearest gallery image of each sample is the anchor itself.
        let thresholded = synthetic_session();
        let free = session_without_threshold();
        for session in [&thresholded, &free] {
            let engine = Engine::cpu("test");
            let gallery = engine
                .upload_gallery(&session.features, session.dim())
                .unwrap();
            for anchor in [0, 9, 31, session.len() - 1] {
                let cloud = block_on(PriorCloud::sample(
                    &engine, session, &gallery, anchor, 3, 12,
                ))
                .unwrap();
                assert_eq!(cloud.nearest.len(), 12);
                assert!(
                    !cloud.nearest.contains(&anchor),
                    "anchor {anchor}: {:?}",
                    cloud.nearest
                );
                let z0 = session.feature(anchor).unwrap();
                let moved = session.operators.apply(&cloud.coefficients, z0).unwrap();
                for (s, z) in moved.chunks_exact(session.dim()).enumerate() {
                    assert_eq!(
                        cloud.nearest[s],
                        brute_force_nearest_other(session, z, anchor),
                        "anchor {anchor}, sample {s}"
                    );
                }
                let label = session.labels[anchor];
                let kept = cloud
                    .nearest
                    .iter()
                    .filter(|&&i| session.labels[i] == label)
                    .count();
                assert!((cloud.keep_label - kept as f32 / 12.0).abs() < 1e-6);
            }
        }
        // The thresholded samples do not move at all, so the anchor is what k = 1 would return.
        let z0 = thresholded.feature(9).unwrap();
        assert_eq!(brute_force_nearest_other(&thresholded, z0, usize::MAX), 9);
    }

    #[test]
    fn the_nearest_other_image_skips_the_anchor_wherever_it_ranks() {
        let hit = |index| Neighbour { index, score: 0.0 };
        assert_eq!(nearest_other_than(&[hit(4), hit(7)], 4), 7);
        assert_eq!(nearest_other_than(&[hit(7), hit(4)], 4), 7);
        assert_eq!(nearest_other_than(&[hit(4)], 4), usize::MAX);
        assert_eq!(nearest_other_than(&[], 4), usize::MAX);
    }

    #[test]
    fn the_same_seed_gives_the_same_cloud_and_another_seed_another() {
        let session = session_without_threshold();
        let engine = Engine::cpu("test");
        let gallery = engine
            .upload_gallery(&session.features, session.dim())
            .unwrap();
        let sample = |seed| block_on(PriorCloud::sample(&engine, &session, &gallery, 3, seed, 8));
        assert_eq!(sample(7).unwrap(), sample(7).unwrap());
        assert_ne!(
            sample(7).unwrap().coefficients,
            sample(8).unwrap().coefficients
        );
    }
}
