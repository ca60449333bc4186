//! A trial's rows and batch draws: the labelled split (the reference's `get_feature_split`) and
//! the per-step `randperm(n)[:k]` batches of each pool.

use super::{SEMI_DOMAIN, SemiSupervisedConfig};
use crate::Result;
use crate::augment::rng::StreamRng;
use crate::eval::{Features, invalid};

/// The rows of one trial and its batch draws: the reference's `get_feature_split` (labelled rows
/// per class; every other row unlabelled) and its per-step `torch.randperm(n)[:k]` of each pool.
#[derive(Debug, Clone)]
pub struct TrialBatches {
    /// The labelled rows, class by class in pick order.
    labelled: Vec<u32>,
    /// The unlabelled rows, ascending.
    unlabelled: Vec<u32>,
    /// The labelled pool in the order the previous draws left it.
    labelled_pool: Vec<u32>,
    /// The unlabelled pool in the order the previous draws left it.
    unlabelled_pool: Vec<u32>,
    /// Rows per labelled batch.
    labelled_batch: usize,
    /// Rows per unlabelled batch.
    unlabelled_batch: usize,
    /// The stream of every batch draw of the trial.
    rng: StreamRng,
}

impl TrialBatches {
    /// The split and batch stream of trial `seed` of `train` under `config`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](crate::Error::InvalidSetting) when `train` has more rows than a `u32` indexes.
    pub fn new(train: &Features, config: &SemiSupervisedConfig, seed: u64) -> Result<Self> {
        if u32::try_from(train.len()).is_err() {
            return Err(invalid(
                "semi-supervised training rows",
                format!("at most {}", u32::MAX),
                train.len(),
            ));
        }
        let labelled = pick_labelled(train, config.labels_per_class, seed);
        let mut is_labelled = vec![false; train.len()];
        for &row in &labelled {
            if let Some(flag) = is_labelled.get_mut(row as usize) {
                *flag = true;
            }
        }
        let unlabelled: Vec<u32> = is_labelled
            .iter()
            .enumerate()
            .filter(|&(_, &flag)| !flag)
            .filter_map(|(row, _)| u32::try_from(row).ok())
            .collect();
        Ok(Self {
            labelled_pool: labelled.clone(),
            unlabelled_pool: unlabelled.clone(),
            labelled,
            unlabelled,
            labelled_batch: config.labelled_batch,
            unlabelled_batch: config.unlabelled_batch,
            rng: StreamRng::from_words(&[SEMI_DOMAIN, seed, 2]),
        })
    }

    /// The trial's labelled rows (training-set indices), class by class.
    pub fn labelled_rows(&self) -> &[u32] {
        &self.labelled
    }

    /// The trial's unlabelled rows (training-set indices): every row not labelled, ascending.
    pub fn unlabelled_rows(&self) -> &[u32] {
        &self.unlabelled
    }

    /// The next labelled batch: `randperm(n_labelled)[:labelled_batch]` of the labelled rows.
    pub fn labelled_batch(&mut self) -> Vec<u32> {
        draw_distinct(&mut self.labelled_pool, self.labelled_batch, &mut self.rng)
    }

    /// The next unlabelled batch: `randperm(n_unlabelled)[:unlabelled_batch]` of the unlabelled
    /// rows (mixup's partner batch is a second call).
    pub fn unlabelled_batch(&mut self) -> Vec<u32> {
        draw_distinct(
            &mut self.unlabelled_pool,
            self.unlabelled_batch,
            &mut self.rng,
        )
    }
}

/// `min(k, n)` distinct items of `pool` (length `n`) in random order, distributed as
/// `pool[randperm(n)[:k]]`: a partial Fisher–Yates shuffle of the first `k` places. The pool keeps
/// the order it leaves, which does not bias the next draw (any arrangement gives a uniform sample).
fn draw_distinct(pool: &mut [u32], k: usize, rng: &mut StreamRng) -> Vec<u32> {
    let n = pool.len();
    let k = k.min(n);
    for i in 0..k {
        let j = i + rng.below((n - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.iter().take(k).copied().collect()
}

/// The rows labelled in a trial: for each class, the first `per_class` of its rows after a seeded
/// shuffle.
fn pick_labelled(train: &Features, per_class: usize, seed: u64) -> Vec<u32> {
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); train.classes()];
    for (i, &label) in train.labels().iter().enumerate() {
        if let (Some(rows), Ok(i)) = (by_class.get_mut(usize::from(label)), u32::try_from(i)) {
            rows.push(i);
        }
    }
    let mut rng = StreamRng::from_words(&[SEMI_DOMAIN, seed, 0]);
    let mut picked = Vec::with_capacity(per_class * train.classes());
    for mut rows in by_class {
        rng.shuffle(&mut rows);
        picked.extend(rows.into_iter().take(per_class));
    }
    picked
}
