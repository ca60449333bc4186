//! Sampling the learned prior at the anchor: S coefficient vectors c ~ p(c | z0) from a seeded
//! sampler, the transported features T(c) z0, where they land in the scatter, the nearest gallery
//! image of each, and the fraction that keep the anchor's label.

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
    /// Nearest gallery image (cosine) of each transported feature.
    pub nearest: Vec<usize>,
    /// Fraction of samples whose nearest image has the anchor's label.
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
        let prior = session.prior.as_ref().map_err(|reason| {
            ViewerError::Compute(mclr_shared::Error::invalid("prior", reason.clone()))
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
        let nearest: Vec<usize> = engine
            .knn(gallery, &moved, 1)
            .await?
            .into_iter()
            .map(|hits| hits.first().map_or(usize::MAX, |n| n.index))
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
            assert_eq!(cloud.nearest[s], index.search(z, 1).unwrap()[0].index);
        }
        let label = session.labels[9];
        let kept = cloud
            .nearest
            .iter()
            .filter(|&&i| session.labels[i] == label)
            .count();
        assert!((cloud.keep_label - kept as f32 / 16.0).abs() < 1e-6);
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
