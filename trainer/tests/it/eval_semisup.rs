//! The semi-supervised protocol's pieces against the reference's definitions computed by hand:
//! FeatMatch's learned attention head (forward in f64 loops with known weights, dropout, torch's
//! initialisation in creation order), the trial's split and without-replacement batch draws, and
//! mixup's independent partner batch and its loss.

// Tests unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use candle_core::{Device, Tensor};
use mclr_trainer::Error;
use mclr_trainer::augment::rng::StreamRng;
use mclr_trainer::eval::semisup::{
    AttentionHead, FEATMATCH_HEADS, TrialBatches, dropout_mask, mix, mixup_consistency, trial,
};
use mclr_trainer::eval::{Features, Method, SemiSupervisedConfig};

const CPU: &Device = &Device::Cpu;

/// A deterministic, irregular value for entry `i` of a weight block keyed by `k`.
fn value(k: usize, i: usize) -> f64 {
    ((k * 31 + i * 7) as f64 * 0.37).sin() * 0.8
}

/// A `rows × cols` matrix (row-major) of [`value`]s keyed by `k`.
fn matrix(k: usize, rows: usize, cols: usize) -> Vec<f64> {
    (0..rows * cols).map(|i| value(k, i)).collect()
}

fn tensor(values: &[f64], dims: &[usize]) -> Tensor {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_vec(v, dims, CPU).unwrap()
}

/// `W v + b` for a row-major `W` (`out × in`).
fn affine(w: &[f64], b: &[f64], v: &[f64]) -> Vec<f64> {
    b.iter()
        .enumerate()
        .map(|(o, bo)| {
            bo + v
                .iter()
                .enumerate()
                .map(|(i, x)| w[o * v.len() + i] * x)
                .sum::<f64>()
        })
        .collect()
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn relu(v: f64) -> f64 {
    v.max(0.0)
}

/// Known layers of a head with `heads` heads on `dim` features: (embd, fc_h, fc) as f64 blocks.
struct Layers {
    heads: usize,
    width: usize,
    dim: usize,
    embed: Vec<(Vec<f64>, Vec<f64>)>,
    fc: Vec<(Vec<f64>, Vec<f64>)>,
    out: (Vec<f64>, Vec<f64>),
}

impl Layers {
    fn new(heads: usize, dim: usize) -> Self {
        let width = dim / heads;
        Self {
            heads,
            width,
            dim,
            embed: (0..heads)
                .map(|h| (matrix(10 + h, width, dim), matrix(20 + h, 1, width)))
                .collect(),
            fc: (0..heads)
                .map(|h| (matrix(30 + h, width, 2 * width), matrix(40 + h, 1, width)))
                .collect(),
            out: (matrix(50, dim, heads * width), matrix(51, 1, dim)),
        }
    }

    fn head(&self) -> AttentionHead {
        let pair = |(w, b): &(Vec<f64>, Vec<f64>), rows: usize, cols: usize| {
            (tensor(w, &[rows, cols]), tensor(b, &[rows]))
        };
        let embed: Vec<_> = self
            .embed
            .iter()
            .map(|l| pair(l, self.width, self.dim))
            .collect();
        let fc: Vec<_> = self
            .fc
            .iter()
            .map(|l| pair(l, self.width, 2 * self.width))
            .collect();
        let out = pair(&self.out, self.dim, self.heads * self.width);
        AttentionHead::from_layers(&embed, &fc, &out).unwrap()
    }

    /// The reference's `AttenHead.forward(x, p)` in f64 loops, with `mask[h][i][j]` multiplying
    /// the attention weights (all ones: no dropout).
    fn forward(&self, x: &[Vec<f64>], p: &[Vec<f64>], mask: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
        let d = (self.width as f64).sqrt();
        x.iter()
            .enumerate()
            .map(|(i, xi)| {
                let mut concat = Vec::new();
                assert_eq!((self.embed.len(), self.fc.len()), (self.heads, self.heads));
                for (((ew, eb), (fw, fb)), mask_h) in self.embed.iter().zip(&self.fc).zip(mask) {
                    let fx = affine(ew, eb, xi);
                    let fp: Vec<Vec<f64>> = p.iter().map(|pj| affine(ew, eb, pj)).collect();
                    let scores: Vec<f64> = fp
                        .iter()
                        .map(|fpj| fx.iter().zip(fpj).map(|(a, b)| a * b).sum::<f64>() / d)
                        .collect();
                    let w: Vec<f64> = softmax(&scores)
                        .iter()
                        .enumerate()
                        .map(|(j, a)| a * mask_h[i][j])
                        .collect();
                    let mut joined: Vec<f64> = (0..self.width)
                        .map(|k| w.iter().zip(&fp).map(|(wj, fpj)| wj * fpj[k]).sum())
                        .collect();
                    joined.extend(&fx);
                    concat.extend(affine(fw, fb, &joined).into_iter().map(relu));
                }
                let (ow, ob) = &self.out;
                affine(ow, ob, &concat)
                    .iter()
                    .zip(xi)
                    .map(|(o, xv)| relu(xv + o))
                    .collect()
            })
            .collect()
    }
}

fn rows_tensor(rows: &[Vec<f64>]) -> Tensor {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    tensor(&flat, &[rows.len(), rows[0].len()])
}

fn assert_close(found: &Tensor, expected: &[Vec<f64>], tol: f64) {
    let found = found.to_vec2::<f32>().unwrap();
    assert_eq!(found.len(), expected.len());
    for (f, e) in found.iter().zip(expected) {
        assert_eq!(f.len(), e.len());
        for (a, b) in f.iter().zip(e) {
            assert!(
                (f64::from(*a) - b).abs() < tol,
                "found {found:?}\nexpected {expected:?}"
            );
        }
    }
}

#[test]
fn attention_head_forward_matches_the_reference_by_hand() {
    // 2 heads of width 3 on 6-dimensional features; 3 queries over 4 memory rows.
    let layers = Layers::new(2, 6);
    let head = layers.head();
    let x = vec![
        vec![0.5, -1.0, 2.0, 0.0, 1.5, -0.3],
        vec![-0.7, 0.2, 0.1, 1.1, -0.4, 0.9],
        vec![1.2, 0.8, -0.6, -1.3, 0.3, 0.05],
    ];
    let p = vec![
        vec![0.1, 0.4, -0.2, 0.7, -1.1, 0.6],
        vec![-0.9, 1.3, 0.5, -0.1, 0.2, 0.8],
        vec![0.3, -0.5, 1.7, 0.4, 0.0, -0.6],
        vec![1.0, 0.1, -0.3, -0.8, 0.9, 0.2],
    ];
    let ones = vec![vec![vec![1.0; 4]; 3]; 2];
    let no_dropout = head
        .forward(&rows_tensor(&x), &rows_tensor(&p), None)
        .unwrap();
    assert_close(&no_dropout, &layers.forward(&x, &p, &ones), 1e-5);

    // A dropout mask with zeros and 1/0.9 scales, as nn.Dropout(0.1) in training mode.
    let keep = 1.0 / 0.9;
    let mask: Vec<Vec<Vec<f64>>> = (0..2)
        .map(|h| {
            (0..3)
                .map(|i| {
                    (0..4)
                        .map(|j| if (h + 2 * i + j) % 3 == 0 { 0.0 } else { keep })
                        .collect()
                })
                .collect()
        })
        .collect();
    let flat: Vec<f64> = mask.iter().flatten().flatten().copied().collect();
    let dropped = head
        .forward(
            &rows_tensor(&x),
            &rows_tensor(&p),
            Some(&tensor(&flat, &[2, 3, 4])),
        )
        .unwrap();
    assert_close(&dropped, &layers.forward(&x, &p, &mask), 1e-5);
    assert_ne!(
        dropped.to_vec2::<f32>().unwrap(),
        no_dropout.to_vec2::<f32>().unwrap()
    );
}

#[test]
fn attention_head_is_initialised_as_torch_linear_in_creation_order() {
    let (dim, heads) = (10, FEATMATCH_HEADS);
    let width = dim / heads; // 2: fc's input is H·w = 8 < d, as torch's floor division allows
    let head = AttentionHead::new(&mut StreamRng::from_words(&[5]), dim, heads, CPU).unwrap();
    // torch's nn.Linear: weight and bias uniform in ±1/√fan_in, drawn layer by layer.
    let mut rng = StreamRng::from_words(&[5]);
    let mut layer = |fan_in: usize, fan_out: usize| {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let mut draw = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| f64::from(rng.uniform(-bound, bound) as f32))
                .collect()
        };
        (draw(fan_in * fan_out), draw(fan_out))
    };
    let embed: Vec<_> = (0..heads).map(|_| layer(dim, width)).collect();
    let fc: Vec<_> = (0..heads).map(|_| layer(2 * width, width)).collect();
    let out = layer(heads * width, dim);
    let expected = Layers {
        heads,
        width,
        dim,
        embed,
        fc,
        out,
    };
    let vars = head.vars();
    assert_eq!(vars.len(), 6);
    let flat = |i: usize| -> Vec<f64> {
        vars[i]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let cat =
        |blocks: Vec<&Vec<f64>>| -> Vec<f64> { blocks.into_iter().flatten().copied().collect() };
    assert_eq!(flat(0), cat(expected.embed.iter().map(|l| &l.0).collect()));
    assert_eq!(flat(1), cat(expected.embed.iter().map(|l| &l.1).collect()));
    assert_eq!(flat(2), cat(expected.fc.iter().map(|l| &l.0).collect()));
    assert_eq!(flat(3), cat(expected.fc.iter().map(|l| &l.1).collect()));
    assert_eq!(flat(4), expected.out.0);
    assert_eq!(flat(5), expected.out.1);
    // And the head built from those layers computes the same thing.
    let x = vec![matrix(60, 1, dim), matrix(61, 1, dim)];
    let p = vec![matrix(62, 1, dim), matrix(63, 1, dim), matrix(64, 1, dim)];
    let ones = vec![vec![vec![1.0; 3]; 2]; heads];
    let found = head
        .forward(&rows_tensor(&x), &rows_tensor(&p), None)
        .unwrap();
    assert_close(&found, &expected.forward(&x, &p, &ones), 1e-5);
    // Features narrower than the heads are refused.
    assert!(matches!(
        AttentionHead::new(&mut StreamRng::from_words(&[5]), 3, heads, CPU),
        Err(Error::InvalidSetting { .. })
    ));
}

#[test]
fn attention_head_gradients_match_finite_differences_of_the_hand_computation() {
    // Every parameter gets a gradient, and the embeddings' one includes the path through the
    // attention weights (a softmax that backpropagates), with dropout on.
    let mut layers = Layers::new(2, 4);
    let head = layers.head();
    let x = vec![vec![0.5, -1.0, 2.0, 0.1], vec![0.3, 0.2, -0.4, 1.0]];
    let p = vec![
        vec![1.0, 0.0, 0.5, -0.5],
        vec![-0.2, 0.7, 0.1, 0.3],
        vec![0.4, -0.6, 0.9, 0.2],
    ];
    let keep = 1.0 / 0.9;
    let mask: Vec<Vec<Vec<f64>>> = (0..2)
        .map(|h| {
            (0..2)
                .map(|i| {
                    (0..3)
                        .map(|j| if h + i + j == 2 { 0.0 } else { keep })
                        .collect()
                })
                .collect()
        })
        .collect();
    let flat_mask: Vec<f64> = mask.iter().flatten().flatten().copied().collect();
    // loss = Σ c_ik out_ik with irregular coefficients.
    let coefficients = matrix(90, 2, 4);
    let loss_by_hand = |layers: &Layers| -> f64 {
        layers
            .forward(&x, &p, &mask)
            .iter()
            .flatten()
            .zip(&coefficients)
            .map(|(o, c)| o * c)
            .sum()
    };
    let out = head
        .forward(
            &rows_tensor(&x),
            &rows_tensor(&p),
            Some(&tensor(&flat_mask, &[2, 2, 3])),
        )
        .unwrap();
    let loss = (out * tensor(&coefficients, &[2, 4]))
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let vars = head.vars();
    for var in &vars {
        assert!(grads.get(var.as_tensor()).is_some());
    }
    let embed_grad: Vec<f32> = grads
        .get(vars[0].as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let (width, dim) = (layers.width, layers.dim);
    let step = 1e-6;
    for (index, &found) in embed_grad.iter().enumerate() {
        let (h, entry) = (index / (width * dim), index % (width * dim));
        let original = layers.embed[h].0[entry];
        layers.embed[h].0[entry] = original + step;
        let up = loss_by_hand(&layers);
        layers.embed[h].0[entry] = original - step;
        let down = loss_by_hand(&layers);
        layers.embed[h].0[entry] = original;
        let expected = (up - down) / (2.0 * step);
        assert!(
            (f64::from(found) - expected).abs() < 1e-4 * expected.abs().max(1.0),
            "embd weight {index}: {found} vs {expected}"
        );
    }
}

#[test]
fn dropout_mask_zeroes_a_tenth_and_scales_the_rest() {
    let mask = dropout_mask(&mut StreamRng::from_words(&[3]), (4, 100, 50), 0.1, CPU).unwrap();
    let again = dropout_mask(&mut StreamRng::from_words(&[3]), (4, 100, 50), 0.1, CPU).unwrap();
    let values = mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(
        values,
        again.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let keep = (1.0 / 0.9) as f32;
    assert!(values.iter().all(|&v| v == 0.0 || v == keep));
    let zeros = values.iter().filter(|&&v| v == 0.0).count() as f64 / values.len() as f64;
    // 20,000 draws: the standard error of the fraction is about 0.002.
    assert!((zeros - 0.1).abs() < 0.01, "{zeros}");
    assert!(dropout_mask(&mut StreamRng::from_words(&[3]), (1, 1, 1), 1.0, CPU).is_err());
}

/// `classes` classes of `per_class` rows each (row `i` has class `i % classes`), 2-dimensional.
fn labelled_rows(classes: usize, per_class: usize) -> Features {
    let n = classes * per_class;
    let data: Vec<f32> = (0..2 * n).map(|i| i as f32).collect();
    let labels: Vec<u16> = (0..n).map(|i| (i % classes) as u16).collect();
    Features::new(data, 2, labels, classes).unwrap()
}

fn batch_config(labelled_batch: usize, unlabelled_batch: usize) -> SemiSupervisedConfig {
    SemiSupervisedConfig {
        labels_per_class: 5,
        labelled_batch,
        unlabelled_batch,
        ..SemiSupervisedConfig::default()
    }
}

#[test]
fn split_excludes_the_labelled_rows_from_the_unlabelled_pool() {
    let train = labelled_rows(3, 20);
    let batches = TrialBatches::new(&train, &batch_config(8, 30), 4).unwrap();
    let labelled = batches.labelled_rows();
    assert_eq!(labelled.len(), 15);
    for class in 0..3 {
        let count = labelled
            .iter()
            .filter(|&&r| train.labels()[r as usize] == class)
            .count();
        assert_eq!(count, 5);
    }
    let unlabelled = batches.unlabelled_rows();
    assert_eq!(unlabelled.len(), 45);
    let labelled: HashSet<u32> = labelled.iter().copied().collect();
    assert_eq!(labelled.len(), 15);
    assert!(unlabelled.iter().all(|r| !labelled.contains(r)));
    let all: HashSet<u32> = labelled.iter().chain(unlabelled).copied().collect();
    assert_eq!(all, (0..60).collect());
}

#[test]
fn batches_are_distinct_rows_of_their_pool_and_deterministic_per_seed() {
    let train = labelled_rows(3, 20);
    let config = batch_config(8, 30);
    let draw = |seed: u64| {
        let mut b = TrialBatches::new(&train, &config, seed).unwrap();
        (0..50)
            .map(|_| (b.labelled_batch(), b.unlabelled_batch()))
            .collect::<Vec<_>>()
    };
    let batches = TrialBatches::new(&train, &config, 4).unwrap();
    let labelled: HashSet<u32> = batches.labelled_rows().iter().copied().collect();
    let run = draw(4);
    for (l, u) in &run {
        assert_eq!(l.len(), 8);
        assert_eq!(u.len(), 30);
        assert_eq!(l.iter().collect::<HashSet<_>>().len(), 8, "{l:?}");
        assert_eq!(u.iter().collect::<HashSet<_>>().len(), 30, "{u:?}");
        assert!(l.iter().all(|r| labelled.contains(r)));
        assert!(u.iter().all(|r| !labelled.contains(r)), "{u:?}");
    }
    assert_eq!(run, draw(4));
    assert_ne!(run, draw(5));
    // A batch larger than its pool is the whole pool, in some order.
    let mut small = TrialBatches::new(&train, &batch_config(32, 480), 4).unwrap();
    let mut l = small.labelled_batch();
    l.sort_unstable();
    let mut all = small.labelled_rows().to_vec();
    all.sort_unstable();
    assert_eq!(l, all);
    let mut u = small.unlabelled_batch();
    u.sort_unstable();
    assert_eq!(u, small.unlabelled_rows());
}

#[test]
fn unlabelled_batches_sample_the_pool_uniformly() {
    // 3,000 batches of 30 of the 45 unlabelled rows: each row is expected 2,000 times, with a
    // standard deviation of about 26 (hypergeometric inclusion, independent batches).
    let train = labelled_rows(3, 20);
    let mut batches = TrialBatches::new(&train, &batch_config(8, 30), 9).unwrap();
    let mut counts = vec![0_usize; 60];
    let mut first = vec![0_usize; 60];
    for _ in 0..3000 {
        let u = batches.unlabelled_batch();
        first[u[0] as usize] += 1;
        for r in u {
            counts[r as usize] += 1;
        }
    }
    for &r in batches.unlabelled_rows() {
        assert!(
            (counts[r as usize] as f64 - 2000.0).abs() < 150.0,
            "{counts:?}"
        );
        // The order within a batch is random too: each row leads about 3000/45 ≈ 67 times.
        assert!((first[r as usize] as f64 - 66.7).abs() < 40.0, "{first:?}");
    }
}

#[test]
fn mixup_partner_batch_is_an_independent_second_draw() {
    let train = labelled_rows(10, 100);
    let mut batches = TrialBatches::new(&train, &batch_config(32, 480), 0).unwrap();
    let labelled: HashSet<u32> = batches.labelled_rows().iter().copied().collect();
    let u = batches.unlabelled_batch();
    let partner = batches.unlabelled_batch();
    assert_eq!(partner.len(), 480);
    assert_ne!(u, partner);
    assert!(partner.iter().all(|r| !labelled.contains(r)));
    // Not a permutation of the same batch: two independent draws of 480 of 950 share about
    // 480²/950 ≈ 243 rows, not all 480.
    let shared = u
        .iter()
        .collect::<HashSet<_>>()
        .intersection(&partner.iter().collect())
        .count();
    assert!((150..350).contains(&shared), "{shared}");
}

/// A 2 → 3 → 2 classifier's weights `(w1, b1, w2, b2)`, row-major.
type Classifier = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

fn classifier(k: usize) -> Classifier {
    (
        matrix(k, 3, 2),
        matrix(k + 1, 1, 3),
        matrix(k + 2, 2, 3),
        matrix(k + 3, 1, 2),
    )
}

/// `softmax(W2 LeakyReLU(W1 x + b1) + b2)` in f64.
fn classify(w: &Classifier, x: &[f64]) -> Vec<f64> {
    let hidden: Vec<f64> = affine(&w.0, &w.1, x)
        .into_iter()
        .map(|h| if h > 0.0 { h } else { 0.01 * h })
        .collect();
    softmax(&affine(&w.2, &w.3, &hidden))
}

fn classifier_vars(w: &Classifier) -> Vec<candle_core::Var> {
    [
        tensor(&w.0, &[3, 2]),
        tensor(&w.1, &[3]),
        tensor(&w.2, &[2, 3]),
        tensor(&w.3, &[2]),
    ]
    .iter()
    .map(|t| candle_core::Var::from_tensor(t).unwrap())
    .collect()
}

/// The reference's mixup term by hand: `F.mse_loss(softmax(clf(λ z_u + (1 − λ) z_mix)),
/// λ softmax(ema(z_u)) + (1 − λ) softmax(ema(z_mix)))`.
fn mixup_by_hand(
    online: &Classifier,
    ema: &Classifier,
    z_u: &[Vec<f64>],
    z_mix: &[Vec<f64>],
    lambda: &[f64],
) -> f64 {
    let mut total = 0.0;
    for i in 0..z_u.len() {
        let mixed: Vec<f64> = (0..2)
            .map(|k| lambda[i] * z_u[i][k] + (1.0 - lambda[i]) * z_mix[i][k])
            .collect();
        let predicted = classify(online, &mixed);
        let (yu, ymix) = (classify(ema, &z_u[i]), classify(ema, &z_mix[i]));
        for c in 0..2 {
            let target = lambda[i] * yu[c] + (1.0 - lambda[i]) * ymix[c];
            total += (predicted[c] - target).powi(2);
        }
    }
    total / (2 * z_u.len()) as f64 // mean over rows and classes
}

#[test]
fn mixup_mix_loss_and_gradient_match_a_hand_computation() {
    let z_u = vec![vec![1.0, -0.5], vec![0.2, 0.8]];
    let z_mix = vec![vec![-0.4, 0.3], vec![1.5, -1.0]];
    let lambda = [0.25, 0.9];
    let lambda_t = tensor(&lambda, &[2, 1]);
    // The mixed features.
    let mixed: Vec<Vec<f64>> = (0..2)
        .map(|i| {
            (0..2)
                .map(|k| lambda[i] * z_u[i][k] + (1.0 - lambda[i]) * z_mix[i][k])
                .collect()
        })
        .collect();
    let found = mix(&rows_tensor(&z_u), &rows_tensor(&z_mix), &lambda_t).unwrap();
    assert_close(&found, &mixed, 1e-6);

    // Different online and EMA weights.
    let (mut online, ema) = (classifier(70), classifier(80));
    let expected = mixup_by_hand(&online, &ema, &z_u, &z_mix, &lambda);
    assert!(expected > 1e-4, "the check is not vacuous: {expected}");
    let (online_vars, ema_vars) = (classifier_vars(&online), classifier_vars(&ema));
    let as_tensors = |vars: &[candle_core::Var]| -> Vec<Tensor> {
        vars.iter().map(|v| v.as_tensor().clone()).collect()
    };
    let loss = mixup_consistency(
        &rows_tensor(&z_u),
        &rows_tensor(&z_mix),
        &lambda_t,
        &as_tensors(&online_vars),
        &as_tensors(&ema_vars),
    )
    .unwrap();
    let value = f64::from(loss.to_scalar::<f32>().unwrap());
    assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");

    // The gradient reaches the online classifier through the softmax, and not the EMA one.
    let grads = loss.backward().unwrap();
    for var in &ema_vars {
        assert!(grads.get(var.as_tensor()).is_none());
    }
    let w1_grad: Vec<f32> = grads
        .get(online_vars[0].as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let step = 1e-6;
    for (index, &found) in w1_grad.iter().enumerate() {
        let original = online.0[index];
        online.0[index] = original + step;
        let up = mixup_by_hand(&online, &ema, &z_u, &z_mix, &lambda);
        online.0[index] = original - step;
        let down = mixup_by_hand(&online, &ema, &z_u, &z_mix, &lambda);
        online.0[index] = original;
        let expected = (up - down) / (2.0 * step);
        assert!(
            (f64::from(found) - expected).abs() < 1e-6 + 1e-3 * expected.abs(),
            "w1 {index}: {found} vs {expected}"
        );
    }
    assert!(w1_grad.iter().any(|g| g.abs() > 1e-5), "{w1_grad:?}");
}

#[test]
fn featmatch_refuses_narrow_features_and_consistency_needs_unlabelled_rows() {
    let train = labelled_rows(2, 20);
    let config = SemiSupervisedConfig {
        iterations: 3,
        hidden: 4,
        ..SemiSupervisedConfig::default()
    };
    // Two-dimensional features cannot host four heads.
    assert!(matches!(
        trial(&train, &train, Method::FeatMatch, &config, 0, CPU),
        Err(Error::InvalidSetting { .. })
    ));
    // Five labels per class of five rows each: every row is labelled, none is left unlabelled.
    let all_labelled = labelled_rows(2, 5);
    assert!(
        trial(
            &all_labelled,
            &all_labelled,
            Method::SupervisedOnly,
            &config,
            0,
            CPU
        )
        .is_ok()
    );
    for method in [Method::PseudoLabel, Method::Mixup] {
        assert!(matches!(
            trial(&all_labelled, &all_labelled, method, &config, 0, CPU),
            Err(Error::InvalidSetting {
                setting: "semi-supervised unlabelled rows",
                ..
            })
        ));
    }
}
