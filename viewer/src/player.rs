//! The path animation: z(t) = T(t·c) z0 walked frame by frame as z ← E z with E = T(Δt·c)
//! computed once, with the trail of PCA positions it leaves. Seeking (scrubbing) computes z(t)
//! directly instead of stepping.
//!
//! A path (path mode) runs over t ∈ [−T, T] and wraps from T straight back to −T. A transport
//! A → B runs over t ∈ [0, 1]: it plays from A (t = 0) to the encoder's estimate of B, lands on
//! t = 1 exactly, holds there for [`HOLD_FRAMES`] frames so that B can be looked at, then starts
//! again from A.

use mclr_shared::geometry::Neighbour;

use crate::engine::{Engine, GalleryIndex, Walker};
use crate::error::{Result, ViewerError};
use crate::session::Session;

/// Frames for one sweep of t across its range at speed 1 (about four seconds at 60 frames/s).
pub const FRAMES_PER_SWEEP: f32 = 240.0;
/// Most trail points kept; older ones are dropped.
pub const MAX_TRAIL: usize = 4096;
/// Frames a transport stays on B (t = 1) before playing again from A (about ¾ s at 60 frames/s).
pub const HOLD_FRAMES: u32 = 45;

/// What a path is determined by; a change of any of it starts a new path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathKey {
    /// Gallery index of z0.
    pub anchor: usize,
    /// The coefficient vector c (M values).
    pub coefficients: Vec<f32>,
    /// Lower end of t: −T for a path, 0 for a transport.
    pub t_min: f32,
    /// Upper end of t: T for a path, 1 for a transport.
    pub t_max: f32,
    /// Δt, the time step of one frame.
    pub dt: f32,
    /// Frames spent at the far end of the range before wrapping: 0 for a path (it wraps at
    /// once), [`HOLD_FRAMES`] for a transport.
    pub hold_frames: u32,
}

impl PathKey {
    /// The key for a path over t ∈ [−`t_range`, `t_range`] at `speed` sweeps per
    /// [`FRAMES_PER_SWEEP`] frames.
    pub fn new(anchor: usize, coefficients: Vec<f32>, t_range: f32, speed: f32) -> Self {
        Self::over(anchor, coefficients, (-t_range, t_range), 0, speed)
    }

    /// The key for a transport A → B over t ∈ [0, 1] (t = 0 is A, t = 1 the estimate of B) at
    /// `speed` sweeps per [`FRAMES_PER_SWEEP`] frames, holding on B for [`HOLD_FRAMES`].
    pub fn transport(anchor: usize, coefficients: Vec<f32>, speed: f32) -> Self {
        Self::over(anchor, coefficients, (0.0, 1.0), HOLD_FRAMES, speed)
    }

    fn over(
        anchor: usize,
        coefficients: Vec<f32>,
        (t_min, t_max): (f32, f32),
        hold_frames: u32,
        speed: f32,
    ) -> Self {
        Self {
            anchor,
            coefficients,
            t_min,
            t_max,
            dt: speed * (t_max - t_min) / FRAMES_PER_SWEEP,
            hold_frames,
        }
    }

    /// `t` clamped into [t_min, t_max].
    pub fn clamp(&self, t: f32) -> f32 {
        t.clamp(self.t_min, self.t_max)
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
    /// Frames spent so far at the far end of the range.
    held: u32,
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
            held: 0,
        };
        player.seek(engine, session, t).await?;
        Ok(player)
    }

    /// What this path was started with.
    pub fn key(&self) -> &PathKey {
        &self.key
    }

    /// Jumps to time `t` (clamped to [t_min, t_max]): z = T(t·c) z0, computed directly rather
    /// than by stepping; the trail restarts there.
    pub async fn seek(&mut self, engine: &Engine, session: &Session, t: f32) -> Result<()> {
        self.trail.clear();
        self.jump(engine, session, t).await
    }

    /// Computes z(t) directly (t clamped to the range) and appends it to the trail.
    async fn jump(&mut self, engine: &Engine, session: &Session, t: f32) -> Result<()> {
        let t = self.key.clamp(t);
        let scaled: Vec<f32> = self.key.coefficients.iter().map(|&x| t * x).collect();
        let transport = engine.transport(&session.operators, &scaled).await?;
        self.z = engine.apply(&transport, &self.z0).await?;
        engine.reposition(&mut self.walker, &self.z)?;
        self.t = t;
        self.held = 0;
        self.push_trail(session)
    }

    fn push_trail(&mut self, session: &Session) -> Result<()> {
        if self.trail.len() >= MAX_TRAIL {
            self.trail.remove(0);
        }
        self.trail.push(session.project(&self.z)?);
        Ok(())
    }

    /// One frame: z ← E z and t ← t + Δt; returns the `k` nearest gallery rows of the new z.
    ///
    /// Past the end of the range (t_max, or t_min when Δt < 0) a path wraps at once to the other
    /// end by a direct seek. A key with `hold_frames` > 0 (a transport) first lands on the end
    /// exactly, stays there `hold_frames` frames, and only then wraps.
    pub async fn advance(
        &mut self,
        engine: &Engine,
        session: &Session,
        gallery: &GalleryIndex,
        k: usize,
    ) -> Result<Vec<Neighbour>> {
        let next = self.t + self.key.dt;
        if next > self.key.t_max || next < self.key.t_min {
            let (end, restart) = if self.key.dt >= 0.0 {
                (self.key.t_max, self.key.t_min)
            } else {
                (self.key.t_min, self.key.t_max)
            };
            if self.key.hold_frames > 0 && self.t != end {
                self.jump(engine, session, end).await?;
            } else if self.held < self.key.hold_frames {
                self.held += 1;
            } else {
                self.seek(engine, session, restart).await?;
            }
            let hits = engine.knn(gallery, &self.z, k).await?;
            return Ok(hits.into_iter().next().unwrap_or_default());
        }
        let frame = engine.walk(&mut self.walker, &self.z, gallery, k).await?;
        self.z = frame.z;
        self.t = next;
        self.push_trail(session)?;
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
    fn a_path_runs_over_minus_t_to_t_and_a_transport_over_zero_to_one() {
        let path_key = key();
        assert_eq!(
            (path_key.t_min, path_key.t_max, path_key.hold_frames),
            (-2.0, 2.0, 0)
        );
        assert_eq!(path_key.dt, 4.0 / FRAMES_PER_SWEEP);
        let transport = PathKey::transport(5, vec![1.0; 5], 1.0);
        assert_eq!((transport.t_min, transport.t_max), (0.0, 1.0));
        assert_eq!(transport.hold_frames, HOLD_FRAMES);
        assert_eq!(transport.dt, 1.0 / FRAMES_PER_SWEEP);
        assert_eq!(transport.clamp(-0.5), 0.0);
        assert_eq!(transport.clamp(1.5), 1.0);
    }

    #[test]
    fn a_transport_seek_is_clamped_into_zero_to_one() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let coefficients = vec![0.0, 1.5, 0.0, -0.75, 0.25];
        let key = PathKey::transport(5, coefficients, 1.0);
        let mut player = block_on(PathPlayer::start(&engine, &session, key, -0.7)).unwrap();
        assert_eq!(player.t(), 0.0);
        assert_eq!(player.position(), session.feature(5).unwrap());
        block_on(player.seek(&engine, &session, 3.0)).unwrap();
        assert_eq!(player.t(), 1.0);
    }

    #[test]
    fn transport_wraps_to_zero_not_minus_one() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let coefficients = vec![0.0, 1.5, 0.0, -0.75, 0.25];
        let z0 = session.feature(5).unwrap().to_vec();
        let at_b = path(&session.operators, &coefficients, &z0, &[1.0]).unwrap();
        // Speed 4: a sweep of 60 frames, so the test walks it several times quickly.
        let key = PathKey::transport(5, coefficients, 4.0);
        let gallery = engine
            .upload_gallery(&session.features, session.dim())
            .unwrap();
        let mut player = block_on(PathPlayer::start(&engine, &session, key, 0.0)).unwrap();
        let mut times = vec![player.t()];
        let mut positions_at_b = Vec::new();
        for _ in 0..3 * (60 + HOLD_FRAMES as usize + 2) {
            let neighbours = block_on(player.advance(&engine, &session, &gallery, 4)).unwrap();
            assert_eq!(neighbours.len(), 4);
            times.push(player.t());
            if player.t() == 1.0 {
                positions_at_b.push(player.position().to_vec());
            }
        }
        assert!(
            times.iter().all(|t| (0.0..=1.0).contains(t)),
            "t left [0, 1]: {times:?}"
        );
        // It lands on t = 1 exactly (the estimate of B), stays for the hold, then restarts at A.
        let first_b = times.iter().position(|&t| t == 1.0).unwrap();
        let held = times[first_b..].iter().take_while(|&&t| t == 1.0).count();
        assert_eq!(held, HOLD_FRAMES as usize + 1, "{times:?}");
        assert_eq!(times[first_b + held], 0.0);
        assert!(times[first_b + held + 1] > 0.0);
        assert!(times[..first_b].windows(2).all(|w| w[0] < w[1]));
        // Every visit to t = 1 shows the estimate of B itself, computed directly.
        assert!(positions_at_b.len() >= 2 * (HOLD_FRAMES as usize + 1));
        assert!(positions_at_b.iter().all(|z| *z == at_b));
        // Only wrapping restarts the trail; landing on B and holding there keep it.
        let mut fresh = block_on(PathPlayer::start(
            &engine,
            &session,
            PathKey::transport(5, vec![0.0, 1.5, 0.0, -0.75, 0.25], 4.0),
            0.0,
        ))
        .unwrap();
        for _ in 0..=first_b + 3 {
            block_on(fresh.advance(&engine, &session, &gallery, 1)).unwrap();
        }
        assert_eq!(fresh.t(), 1.0);
        assert_eq!(fresh.trail().len(), first_b + 1);
    }

    #[test]
    fn an_anchor_past_the_gallery_is_an_error_not_a_panic() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let key = PathKey::new(10_000, vec![0.0; 5], 1.0, 1.0);
        assert!(block_on(PathPlayer::start(&engine, &session, key, 0.0)).is_err());
    }
}
