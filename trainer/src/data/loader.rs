//! Batches for training and evaluation, built in parallel and prefetched.
//!
//! [`SslLoader`] serves an epoch as batches of two augmented views of the same images, in a seeded
//! per-epoch shuffle; [`EvalLoader`] serves the images in order through the deterministic eval
//! transform. Each batch is built by rayon (all images of a batch in parallel) on a producer
//! thread that runs ahead of the consumer through a bounded queue
//! (`std::sync::mpsc::sync_channel(prefetch)`), so augmentation overlaps with training.
//!
//! Views depend only on `(seed, epoch, image index, view)`, never on which thread built them or
//! which batch they fell in: the same seed gives bit-identical batches with any number of threads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::ImageSet;
use crate::augment::rng::StreamRng;
use crate::augment::{EvalTransform, Scratch, SslAugment};
use crate::error::{Error, Result};

/// How batches are cut and produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images (pairs, for the SSL loader) per batch.
    pub batch_size: usize,
    /// Drop the last, incomplete batch of an epoch.
    pub drop_last: bool,
    /// Shuffle the images each epoch (SSL loader only; the eval loader keeps dataset order).
    pub shuffle: bool,
    /// Seed of the shuffles and of the augmentations.
    pub seed: u64,
    /// Batches built ahead of the consumer (the queue's bound; at least 1).
    pub prefetch: usize,
    /// Worker threads: `None` uses rayon's global pool, `Some(n)` a dedicated pool of `n`.
    pub threads: Option<usize>,
}

impl Default for LoaderConfig {
    /// Batch 512 (docs/method.md §7), drop last, shuffled, seed 0, 4 batches ahead, the global pool.
    fn default() -> Self {
        Self {
            batch_size: 512,
            drop_last: true,
            shuffle: true,
            seed: 0,
            prefetch: 4,
            threads: None,
        }
    }
}

impl LoaderConfig {
    fn validate(&self) -> Result<Option<Arc<rayon::ThreadPool>>> {
        if self.batch_size == 0 {
            return Err(Error::InvalidSetting {
                setting: "batch_size",
                expected: "at least 1".into(),
                found: "0".into(),
            });
        }
        if self.prefetch == 0 {
            return Err(Error::InvalidSetting {
                setting: "prefetch",
                expected: "at least 1 batch".into(),
                found: "0".into(),
            });
        }
        self.threads
            .map(|threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("mclr-augment-{i}"))
                    .build()
                    .map(Arc::new)
                    .map_err(|e| Error::ThreadPool {
                        threads,
                        source: Box::new(e),
                    })
            })
            .transpose()
    }

    /// Number of batches for `n` images.
    fn batches(&self, n: usize) -> usize {
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }
}

/// A batch of image pairs: two augmented views of the same images.
#[derive(Clone, Debug, PartialEq)]
pub struct PairBatch {
    /// Side of each view in pixels.
    pub size: usize,
    /// First views, `B×3×size×size`, NCHW, normalised.
    pub view0: Vec<f32>,
    /// Second views, same layout.
    pub view1: Vec<f32>,
    /// Labels of the images, when the set is labelled.
    pub labels: Option<Vec<u16>>,
    /// Indices of the images in the image set.
    pub indices: Vec<usize>,
}

impl PairBatch {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// NCHW shape of each view.
    pub fn shape(&self) -> [usize; 4] {
        [self.len(), 3, self.size, self.size]
    }
}

/// A batch of eval-transformed images.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalBatch {
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// `B×3×height×width`, NCHW, normalised.
    pub images: Vec<f32>,
    /// Labels, when the set is labelled.
    pub labels: Option<Vec<u16>>,
    /// Indices of the images in the image set.
    pub indices: Vec<usize>,
}

impl EvalBatch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// NCHW shape.
    pub fn shape(&self) -> [usize; 4] {
        [self.len(), 3, self.height, self.width]
    }
}

/// The order of the images in an epoch: a seeded shuffle of `0..n` (Fisher–Yates on the
/// `(seed, epoch)` stream).
pub fn epoch_permutation(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    StreamRng::for_shuffle(seed, epoch).shuffle(&mut order);
    order
}

/// Serves epochs of augmented view pairs for self-supervised training.
#[derive(Clone, Debug)]
pub struct SslLoader {
    images: Arc<ImageSet>,
    augment: Arc<SslAugment>,
    config: LoaderConfig,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl SslLoader {
    /// A loader over `images` with the given augmentation and settings.
    pub fn new(images: Arc<ImageSet>, augment: SslAugment, config: LoaderConfig) -> Result<Self> {
        let pool = config.validate()?;
        Ok(Self {
            images,
            augment: Arc::new(augment),
            config,
            pool,
        })
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.config.batches(self.images.len())
    }

    /// The image order of `epoch` (the identity when shuffling is off).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        if self.config.shuffle {
            epoch_permutation(self.config.seed, epoch, self.images.len())
        } else {
            (0..self.images.len()).collect()
        }
    }

    /// Starts producing the batches of `epoch` on a background thread; iterate the result.
    pub fn epoch(&self, epoch: u64) -> Result<Prefetch<PairBatch>> {
        let order = self.order(epoch);
        let batch_size = self.config.batch_size;
        let count = self.batches_per_epoch();
        let this = self.clone();
        Prefetch::spawn(self.config.prefetch, count, move |k| {
            let start = k * batch_size;
            let end = (start + batch_size).min(order.len());
            this.batch(epoch, order.get(start..end).unwrap_or_default())
        })
    }

    /// Builds the batch of the given image indices in `epoch`, synchronously (the loader's worker
    /// pool, or rayon's global pool). Indices out of range yield all-zero views.
    pub fn batch(&self, epoch: u64, indices: &[usize]) -> PairBatch {
        match &self.pool {
            Some(pool) => pool.install(|| self.build(epoch, indices)),
            None => self.build(epoch, indices),
        }
    }

    fn build(&self, epoch: u64, indices: &[usize]) -> PairBatch {
        let view_len = self.augment.view_len();
        let mut view0 = vec![0.0_f32; indices.len() * view_len];
        let mut view1 = vec![0.0_f32; indices.len() * view_len];
        let seed = self.config.seed;
        view0
            .par_chunks_mut(view_len)
            .zip(view1.par_chunks_mut(view_len))
            .zip(indices.par_iter())
            .with_min_len(4)
            .for_each_init(Scratch::new, |scratch, ((out0, out1), &index)| {
                let Some(image) = self.images.image_ref(index) else {
                    return;
                };
                for (view, out) in [(0, out0), (1, out1)] {
                    let mut rng = StreamRng::for_view(seed, epoch, index as u64, view);
                    self.augment.view(image, &mut rng, scratch, out);
                }
            });
        PairBatch {
            size: self.augment.size(),
            view0,
            view1,
            labels: self.labels(indices),
            indices: indices.to_vec(),
        }
    }

    fn labels(&self, indices: &[usize]) -> Option<Vec<u16>> {
        let labels = self.images.labels()?;
        Some(
            indices
                .iter()
                .map(|&i| labels.get(i).copied().unwrap_or(0))
                .collect(),
        )
    }
}

/// Serves an image set in order through the eval transform.
#[derive(Clone, Debug)]
pub struct EvalLoader {
    images: Arc<ImageSet>,
    transform: Arc<EvalTransform>,
    config: LoaderConfig,
    pool: Option<Arc<rayon::ThreadPool>>,
    out_size: (usize, usize),
}

impl EvalLoader {
    /// A loader over `images` (in dataset order; `shuffle` and `seed` are ignored).
    pub fn new(
        images: Arc<ImageSet>,
        transform: EvalTransform,
        config: LoaderConfig,
    ) -> Result<Self> {
        let pool = config.validate()?;
        let out_size = transform.output_size(images.height(), images.width())?;
        Ok(Self {
            images,
            transform: Arc::new(transform),
            config,
            pool,
            out_size,
        })
    }

    /// Batches in one pass.
    pub fn batches(&self) -> usize {
        self.config.batches(self.images.len())
    }

    /// Output `(height, width)` of each image.
    pub fn output_size(&self) -> (usize, usize) {
        self.out_size
    }

    /// Starts producing the batches on a background thread; iterate the result.
    pub fn iter(&self) -> Result<Prefetch<EvalBatch>> {
        let batch_size = self.config.batch_size;
        let n = self.images.len();
        let this = self.clone();
        Prefetch::spawn(self.config.prefetch, self.batches(), move |k| {
            let start = k * batch_size;
            let indices: Vec<usize> = (start..(start + batch_size).min(n)).collect();
            this.batch(&indices)
        })
    }

    /// Builds the batch of the given image indices, synchronously.
    pub fn batch(&self, indices: &[usize]) -> EvalBatch {
        match &self.pool {
            Some(pool) => pool.install(|| self.build(indices)),
            None => self.build(indices),
        }
    }

    fn build(&self, indices: &[usize]) -> EvalBatch {
        let (height, width) = self.out_size;
        let len = 3 * height * width;
        let mut images = vec![0.0_f32; indices.len() * len];
        images
            .par_chunks_mut(len)
            .zip(indices.par_iter())
            .with_min_len(4)
            .for_each_init(Scratch::new, |scratch, (out, &index)| {
                if let Some(image) = self.images.image_ref(index) {
                    self.transform.apply(image, scratch, out);
                }
            });
        let labels = self.images.labels().map(|l| {
            indices
                .iter()
                .map(|&i| l.get(i).copied().unwrap_or(0))
                .collect()
        });
        EvalBatch {
            height,
            width,
            images,
            labels,
            indices: indices.to_vec(),
        }
    }
}

/// Batches produced on a background thread, at most `prefetch` ahead of the consumer. Dropping it
/// stops the producer after the batch in progress and joins it. A panic in the producer is
/// re-raised in the consumer rather than ending the epoch early.
#[derive(Debug)]
pub struct Prefetch<T> {
    rx: Option<Receiver<T>>,
    handle: Option<JoinHandle<()>>,
    remaining: usize,
}

impl<T: Send + 'static> Prefetch<T> {
    /// Runs `make(0..count)` on a new thread, queueing the results (at most `depth` waiting).
    pub fn spawn(
        depth: usize,
        count: usize,
        make: impl Fn(usize) -> T + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx): (SyncSender<T>, Receiver<T>) = sync_channel(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("mclr-loader".into())
            .spawn(move || {
                for k in 0..count {
                    if tx.send(make(k)).is_err() {
                        break; // The consumer hung up.
                    }
                }
            })
            .map_err(|e| Error::ThreadPool {
                threads: 1,
                source: Box::new(e),
            })?;
        Ok(Self {
            rx: Some(rx),
            handle: Some(handle),
            remaining: count,
        })
    }
}

impl<T> Iterator for Prefetch<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.remaining == 0 {
            return None;
        }
        match self.rx.as_ref()?.recv() {
            Ok(item) => {
                self.remaining -= 1;
                Some(item)
            }
            Err(_) => {
                // The producer stopped before sending everything: it can only have panicked.
                self.remaining = 0;
                self.rx = None;
                if let Some(Err(payload)) = self.handle.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(payload);
                }
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for Prefetch<T> {}

impl<T> Drop for Prefetch<T> {
    fn drop(&mut self) {
        // Hang up first so that a producer blocked on a full queue wakes and stops.
        self.rx = None;
        if let Some(handle) = self.handle.take() {
            // A panic here was either already re-raised by `next` or is moot: we are stopping.
            let _ = handle.join();
        }
    }
}
