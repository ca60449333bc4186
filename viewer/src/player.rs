//! The path animation: z(t) = T(t·c) z0 walked frame by frame as z ← E z with E = T(Δt·c)
//! computed once, wrapping from T back to −T, with the trail of PCA positions it leaves.
//! Seeking (scrubbing) computes z(t) directly instead of stepping.

use mclr_shared::geometry::Neighbor;

use crate::engine::{Engine, GalleryIndex, Walker};
use crate::error::{Result, ViewerError};
use crate::session::Session;

/// Frames for one sweep of t from −T to T at speed 1 (about four seconds at 60 frames/s).
pub const FRAMES_PER_SWEEP: f32 = 240.0;
/// Most trail points kept; older ones are dropped.
pub const MAX_TRAIL: usize = 4096;

/// What a path is determined by; a change of any of it starts a new path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathKey {
    /// Gallery index of z0.
    pub anchor: usize,
    /// The coefficient vector c (M values).
    pub coefficients: Vec<f32>,
    /// T: t runs over [−T, T].
    pub t_range: f32,
    /// Δt, the time step of one frame.
    pub dt: f32,
}

impl PathKey {
    /// The key for a path at `speed` sweeps per [`FRAMES_PER_SWEEP`] frames.
    pub fn new(anchor: usize, coefficients: Vec<f32>, t_range: f32, speed: f32) -> Self {
        Self {
            anchor,
            coefficients,
            t_range,
            dt: speed * 2.0 * t_range / FRAMES_PER_SWEEP,
        }
    }
}

/// A path being played.
#[derive(Debug)]
pub struct PathPlayer {
    key: PathKey,
    z0: Vec<f32>,
    walker: Walker,
    z: Vec<f32>,
    t: f32,
    trail: Vec<[f32; 2]>,
}

impl PathPlayer {
    /// Starts the path of `key` at time `t` (z = T(t·c) z0, computed directly).
    pub async fn start(engine: &Engine, session: &Session, key: PathKey, t: f32) -> Result<Self> {
        let z0 = session
            .feature(key.anchor)
            .ok_or_else(|| {
                ViewerError::Compute(mclr_shared::Error::invalid(
                    "anchor",
                    format!("{} is not below {}", key.anchor, session.len()),
                ))
            })?
            .to_vec();
        let scaled: Vec<f32> = key.coefficients.iter().map(|&x| key.dt * x).collect();
        let walker = engine.walker(&session.operators, &scaled, &z0).await?;
        let mut player = Self {
            key,
            z: z0.clone(),
            z0,
            walker,
            t: 0.0,
            trail: Vec::new(),
        };
        player.seek(engine, session, t).await?;
        Ok(player)
    }

    /// What this path was started with.
    pub fn key(&self) -> &PathKey {
        &self.key
    }

    /// Jumps to time `t` (clamped to [−T, T]): z = T(t·c) z0, computed directly rather than by
    /// stepping; the trail restarts there.
    pub async fn seek(&mut self, engine: &Engine, session: &Session, t: f32) -> Result<()> {
        let t = t.clamp(-self.key.t_range, self.key.t_range);
        let scaled: Vec<f32> = self.key.coefficients.iter().map(|&x| t * x).collect();
        let transport = engine.transport(&session.operators, &scaled).await?;
        self.z = engine.apply(&transport, &self.z0).await?;
        engine.reposition(&mut self.walker, &self.z)?;
        self.t = t;
        self.trail.clear();
        self.trail.push(session.project(&self.z)?);
        Ok(())
    }

    /// One frame: z ← E z and t ← t + Δt, wrapping to −T (by a direct seek) past T; returns
    /// the `k` nearest gallery rows of the new z.
    pub async fn advance(
        &mut self,
        engine: &Engine,
        session: &Session,
        gallery: &GalleryIndex,
        k: usize,
    ) -> Result<Vec<Neighbor>> {
        let next = self.t + self.key.dt;
        if next > self.key.t_range || next < -self.key.t_range {
            let restart = if self.key.dt >= 0.0 {
                -self.key.t_range
            } else {
                self.key.t_range
            };
            self.seek(engine, session, restart).await?;
            let hits = engine.knn(gallery, &self.z, k).await?;
            return Ok(hits.into_iter().next().unwrap_or_default());
        }
        let frame = engine.walk(&mut self.walker, &self.z, gallery, k).await?;
        self.z = frame.z;
        self.t = next;
        if self.trail.len() >= MAX_TRAIL {
            self.trail.remove(0);
        }
        self.trail.push(session.project(&self.z)?);
        Ok(frame.neighbours)
    }

    /// The current feature z(t).
    pub fn position(&self) -> &[f32] {
        &self.z
    }

    /// The current time t.
    pub fn t(&self) -> f32 {
        self.t
    }

    /// PCA positions visited since the last seek, oldest first; the last is the current one.
    pub fn trail(&self) -> &[[f32; 2]] {
        &self.trail
    }
}

#[cfg(test)]
mod tests {
    use mclr_shared::geometry::{KnnIndex, Metric};
    use mclr_shared::operators::{PathStepper, path};

    use super::*;
    use crate::engine::tests::{block_on, synthetic_session};

    fn key() -> PathKey {
        PathKey::new(5, vec![0.0, 1.5, 0.0, -0.75, 0.25], 2.0, 1.0)
    }

    #[test]
    fn stepping_equals_the_shared_path_stepper() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let key = key();
        let z0 = session.feature(key.anchor).unwrap();
        let mut reference =
            PathStepper::new(&session.operators, &key.coefficients, z0, key.dt).unwrap();
        let gallery = engine
            .upload_gallery(&session.features, session.dim())
            .unwrap();
        let index = KnnIndex::new(session.features.clone(), session.dim(), Metric::Cosine).unwrap();
        let mut player = block_on(PathPlayer::start(&engine, &session, key, 0.0)).unwrap();
        assert_eq!(player.position(), z0);
        for _ in 0..50 {
            let neighbours = block_on(player.advance(&engine, &session, &gallery, 8)).unwrap();
            let expected = reference.step().unwrap();
            assert_eq!(player.position(), expected);
            assert_eq!(neighbours, index.search(expected, 8).unwrap());
        }
        assert_eq!(player.trail().len(), 51);
        assert_eq!(
            *player.trail().last().unwrap(),
            session.project(player.position()).unwrap()
        );
    }

    #[test]
    fn seeking_equals_the_shared_path_at_that_time() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let key = key();
        let z0 = session.feature(key.anchor).unwrap().to_vec();
        let c = key.coefficients.clone();
        let player = block_on(PathPlayer::start(&engine, &session, key, -1.3)).unwrap();
        let expected = path(&session.operators, &c, &z0, &[-1.3]).unwrap();
        assert_eq!(player.position(), expected.as_slice());
        assert_eq!(player.trail().len(), 1);
    }

    #[test]
    fn passing_t_wraps_to_minus_t() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let key = key();
        let dt = key.dt;
        let gallery = engine
            .upload_gallery(&session.features, session.dim())
            .unwrap();
        let mut player =
            block_on(PathPlayer::start(&engine, &session, key, 2.0 - dt / 2.0)).unwrap();
        let neighbours = block_on(player.advance(&engine, &session, &gallery, 3)).unwrap();
        assert_eq!(neighbours.len(), 3);
        assert_eq!(player.t(), -2.0);
        assert_eq!(player.trail().len(), 1);
    }

    #[test]
    fn an_anchor_past_the_gallery_is_an_error_not_a_panic() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let key = PathKey::new(10_000, vec![0.0; 5], 1.0, 1.0);
        assert!(block_on(PathPlayer::start(&engine, &session, key, 0.0)).is_err());
    }
}
