//! Behaviour of `mclr_shared::geometry`: the dense symmetric eigen-solver, PCA and exact kNN,
//! each checked against an oracle (a spectrum built by hand, a known Gaussian covariance, brute
//! force in `f64`).
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mclr_shared::Error;
use mclr_shared::geometry::{KnnIndex, Metric, Neighbour, Pca, symmetric_eigen, top_k};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

// ---------------------------------------------------------------- helpers

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform in (0, 1].
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal by Box–Muller.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v) = (uniform(rng), uniform(rng));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// A random `n × n` orthogonal matrix (row-major) as a product of Givens rotations over every
/// plane, three sweeps over.
fn random_orthogonal(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut q = vec![0.0; n * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    for _ in 0..3 {
        for i in 0..n {
            for j in i + 1..n {
                let angle = 2.0 * std::f64::consts::PI * uniform(rng);
                let (s, c) = angle.sin_cos();
                for row in q.chunks_exact_mut(n) {
                    let (a, b) = (row[i], row[j]);
                    row[i] = c * a - s * b;
                    row[j] = s * a + c * b;
                }
            }
        }
    }
    q
}

/// `Q diag(λ) Qᵀ`, with the eigenvectors as the columns of `q`.
fn compose(q: &[f64], lambda: &[f64]) -> Vec<f64> {
    let n = lambda.len();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n)
                .map(|k| q[i * n + k] * lambda[k] * q[j * n + k])
                .sum();
        }
    }
    a
}

fn column(q: &[f64], n: usize, k: usize) -> Vec<f64> {
    (0..n).map(|i| q[i * n + k]).collect()
}

fn dot64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn shape_field(err: &Error) -> &str {
    match err {
        Error::Shape { field, .. } => field,
        other => panic!("expected a Shape error, got {other:?}"),
    }
}

fn invalid_field(err: &Error) -> &str {
    match err {
        Error::Invalid { field, .. } => field,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- symmetric_eigen

fn check_known_spectrum(n: usize, seed: u64) {
    let mut rng = rng(seed);
    let q = random_orthogonal(n, &mut rng);
    // Distinct eigenvalues of both signs, spread over two orders of magnitude, in shuffled order.
    let lambda: Vec<f64> = (0..n)
        .map(|k| (k as f64 + 1.0) * if k % 3 == 0 { -1.0 } else { 1.5 })
        .collect();
    let a = compose(&q, &lambda);
    let norm = lambda.iter().fold(0.0_f64, |m, l| m.max(l.abs()));

    let eigen = symmetric_eigen(&a, n).unwrap();
    assert_eq!(eigen.n, n);
    let mut expected: Vec<(f64, usize)> = lambda.iter().copied().zip(0..).collect();
    expected.sort_by(|x, y| y.0.total_cmp(&x.0));

    for (i, &(value, k)) in expected.iter().enumerate() {
        assert!(
            (eigen.values[i] - value).abs() < 1e-12 * norm * n as f64,
            "eigenvalue {i}: {} vs {value}",
            eigen.values[i]
        );
        let v = eigen.vector(i).unwrap();
        let alignment = dot64(v, &column(&q, n, k)).abs();
        assert!(
            (alignment - 1.0).abs() < 1e-10,
            "vector {i}: |v·q| = {alignment}"
        );

        // Residual A v − λ v.
        let residual = (0..n)
            .map(|r| (dot64(&a[r * n..(r + 1) * n], v) - eigen.values[i] * v[r]).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            residual < 1e-12 * norm * n as f64,
            "residual {i}: {residual}"
        );
    }
    // Orthonormal rows.
    for i in 0..n {
        for j in 0..=i {
            let d = dot64(eigen.vector(i).unwrap(), eigen.vector(j).unwrap());
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 1e-12, "v{i}·v{j} = {d}");
        }
    }
    assert!(eigen.vector(n).is_none());
}

#[test]
fn symmetric_eigen_recovers_known_spectrum_n5() {
    check_known_spectrum(5, 1);
}

#[test]
fn symmetric_eigen_recovers_known_spectrum_n64() {
    check_known_spectrum(64, 2);
}

#[test]
fn symmetric_eigen_sorts_descending_and_fixes_signs() {
    let mut rng = rng(3);
    let n = 12;
    let q = random_orthogonal(n, &mut rng);
    let lambda: Vec<f64> = (0..n).map(|k| ((k * 7) % n) as f64 - 4.0).collect();
    let eigen = symmetric_eigen(&compose(&q, &lambda), n).unwrap();
    assert!(eigen.values.windows(2).all(|w| w[0] >= w[1]));
    for i in 0..n {
        let v = eigen.vector(i).unwrap();
        let largest = v
            .iter()
            .copied()
            .fold(0.0_f64, |m, x| if x.abs() > m.abs() { x } else { m });
        assert!(largest > 0.0, "vector {i} has its largest entry negative");
    }
}

#[test]
fn symmetric_eigen_of_negated_matrix_gives_same_bits_for_same_input() {
    let mut rng = rng(4);
    let n = 20;
    let q = random_orthogonal(n, &mut rng);
    let lambda: Vec<f64> = (0..n).map(|k| k as f64 * 0.5 - 3.0).collect();
    let a = compose(&q, &lambda);
    let first = symmetric_eigen(&a, n).unwrap();
    let second = symmetric_eigen(&a, n).unwrap();
    let bits = |e: &mclr_shared::geometry::SymmetricEigen| -> Vec<u64> {
        e.values
            .iter()
            .chain(&e.vectors)
            .map(|x| x.to_bits())
            .collect()
    };
    assert_eq!(bits(&first), bits(&second));

    // −A has the negated spectrum in reverse order and the same eigenvectors up to sign.
    let negated: Vec<f64> = a.iter().map(|x| -x).collect();
    let flipped = symmetric_eigen(&negated, n).unwrap();
    for i in 0..n {
        assert!((flipped.values[i] + first.values[n - 1 - i]).abs() < 1e-12 * n as f64);
        let d = dot64(flipped.vector(i).unwrap(), first.vector(n - 1 - i).unwrap());
        assert!((d.abs() - 1.0).abs() < 1e-10);
    }
}

#[test]
fn symmetric_eigen_handles_repeated_zero_and_trivial_matrices() {
    // Identity: every vector is an eigenvector; we still get an orthonormal basis.
    let n = 6;
    let mut identity = vec![0.0; n * n];
    for i in 0..n {
        identity[i * n + i] = 1.0;
    }
    let eigen = symmetric_eigen(&identity, n).unwrap();
    assert!(eigen.values.iter().all(|&v| (v - 1.0).abs() < 1e-15));
    for i in 0..n {
        for j in 0..n {
            let d = dot64(eigen.vector(i).unwrap(), eigen.vector(j).unwrap());
            assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-14);
        }
    }

    let zero = symmetric_eigen(&vec![0.0; n * n], n).unwrap();
    assert!(zero.values.iter().all(|&v| v == 0.0));
    assert_eq!(zero.vectors, identity);

    let one = symmetric_eigen(&[-2.5], 1).unwrap();
    assert_eq!(
        (one.values.as_slice(), one.vectors.as_slice()),
        (&[-2.5][..], &[1.0][..])
    );

    let empty = symmetric_eigen(&[], 0).unwrap();
    assert!(empty.values.is_empty() && empty.vectors.is_empty());
}

#[test]
fn symmetric_eigen_is_accurate_at_extreme_magnitudes() {
    let mut rng = rng(5);
    let n = 8;
    let q = random_orthogonal(n, &mut rng);
    let lambda: Vec<f64> = (0..n).map(|k| k as f64 + 1.0).collect();
    let base = compose(&q, &lambda);
    let reference = symmetric_eigen(&base, n).unwrap();
    for scale in [1e300, 1e-300, 2f64.powi(-1060)] {
        let scaled: Vec<f64> = base.iter().map(|x| x * scale).collect();
        let eigen = symmetric_eigen(&scaled, n).unwrap();
        for (got, want) in eigen.values.iter().zip(&reference.values) {
            let tolerance = if scale < 1e-310 { 1e-3 } else { 1e-12 };
            assert!(
                (got / scale - want).abs() < tolerance * n as f64,
                "{got} vs {want}·{scale}"
            );
        }
    }
}

#[test]
fn symmetric_eigen_rejects_bad_input() {
    let err = symmetric_eigen(&[1.0; 6], 3).unwrap_err();
    assert_eq!(err, Error::shape("a", &[3, 3], &[6]));

    let err = symmetric_eigen(&[1.0, f64::NAN, f64::NAN, 1.0], 2).unwrap_err();
    assert!(
        matches!(err, Error::NonFinite { ref field, index: 1, .. } if field == "a"),
        "{err:?}"
    );
    let err = symmetric_eigen(&[f64::INFINITY], 1).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err:?}");

    let err = symmetric_eigen(&[1.0, 2.0, 3.0, 4.0], 2).unwrap_err();
    assert_eq!(invalid_field(&err), "a");

    let err = symmetric_eigen(&[], usize::MAX).unwrap_err();
    assert_eq!(invalid_field(&err), "n");
}

#[test]
fn symmetric_eigen_tolerates_rounding_level_asymmetry() {
    let a = [2.0, 1.0 + 1e-15, 1.0, 2.0];
    let eigen = symmetric_eigen(&a, 2).unwrap();
    assert!((eigen.values[0] - 3.0).abs() < 1e-14 && (eigen.values[1] - 1.0).abs() < 1e-14);
}

// ---------------------------------------------------------------- PCA

/// `rows × d` samples of `mean + Q diag(√λ) z`, `z ~ N(0, I)`.
fn gaussian_samples(rows: usize, mean: &[f64], q: &[f64], lambda: &[f64], seed: u64) -> Vec<f32> {
    let d = lambda.len();
    let mut rng = rng(seed);
    let mut data = Vec::with_capacity(rows * d);
    let mut z = vec![0.0; d];
    for _ in 0..rows {
        for (zk, l) in z.iter_mut().zip(lambda) {
            *zk = normal(&mut rng) * l.sqrt();
        }
        for i in 0..d {
            data.push((mean[i] + dot64(&q[i * d..(i + 1) * d], &z)) as f32);
        }
    }
    data
}

#[test]
fn pca_recovers_leading_components_of_known_gaussian() {
    let d = 16;
    let mut rng = rng(6);
    let q = random_orthogonal(d, &mut rng);
    let lambda: Vec<f64> = vec![
        25.0, 12.0, 6.0, 3.0, 2.5, 2.0, 1.8, 1.6, 1.4, 1.2, 1.0, 0.8, 0.6, 0.4, 0.2, 0.1,
    ];
    let mean: Vec<f64> = (0..d).map(|i| 10.0 - i as f64).collect();
    let rows = 20_000;
    let data = gaussian_samples(rows, &mean, &q, &lambda, 7);

    let pca = Pca::fit(&data, rows, d, 3).unwrap();
    assert_eq!(
        (pca.dim, pca.n_components(), pca.components.len()),
        (d, 3, 3 * d)
    );
    for (k, &want) in lambda.iter().enumerate().take(3) {
        let axis: Vec<f64> = pca.components[k * d..(k + 1) * d]
            .iter()
            .map(|&x| x.into())
            .collect();
        let alignment = dot64(&axis, &column(&q, d, k)).abs();
        assert!(alignment > 0.995, "component {k}: |c·q| = {alignment}");
        let variance = f64::from(pca.explained_variance[k]);
        assert!(
            (variance / want - 1.0).abs() < 0.04,
            "variance {k}: {variance} vs {want}"
        );
    }
    for (m, want) in pca.mean.iter().zip(&mean) {
        assert!((f64::from(*m) - want).abs() < 0.1);
    }
}

#[test]
fn pca_fit_is_deterministic_and_projects_mean_to_origin() {
    let d = 13;
    let mut rng = rng(8);
    let q = random_orthogonal(d, &mut rng);
    let lambda: Vec<f64> = (0..d).map(|k| 1.0 + (d - k) as f64).collect();
    let mean = vec![3.0; d];
    let rows = 1_000;
    let data = gaussian_samples(rows, &mean, &q, &lambda, 9);

    let first = Pca::fit(&data, rows, d, 5).unwrap();
    let second = Pca::fit(&data, rows, d, 5).unwrap();
    let bits = |p: &Pca| -> Vec<u32> {
        p.mean
            .iter()
            .chain(&p.components)
            .chain(&p.explained_variance)
            .map(|x| x.to_bits())
            .collect()
    };
    assert_eq!(bits(&first), bits(&second));

    let origin = first.project(&first.mean).unwrap();
    assert_eq!(origin, vec![0.0; 5]);
}

/// `f64` scatter of the data by the textbook double loop, for comparison.
fn naive_covariance(data: &[f32], rows: usize, d: usize) -> Vec<f64> {
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..rows).map(|r| f64::from(data[r * d + j])).sum::<f64>() / rows as f64)
        .collect();
    let mut cov = vec![0.0; d * d];
    for r in 0..rows {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] +=
                    (f64::from(data[r * d + i]) - mean[i]) * (f64::from(data[r * d + j]) - mean[j]);
            }
        }
    }
    cov.iter().map(|c| c / (rows - 1) as f64).collect()
}

#[test]
fn pca_matches_naive_covariance_for_odd_dimension_and_partial_blocks() {
    // d = 7 exercises the zero padding of the 4-wide tiles, 601 rows a partial last row block.
    let (rows, d) = (601, 7);
    let mut rng = rng(10);
    let data: Vec<f32> = (0..rows * d)
        .map(|i| (normal(&mut rng) * (1.0 + (i % d) as f64)) as f32)
        .collect();
    let oracle = symmetric_eigen(&naive_covariance(&data, rows, d), d).unwrap();
    let pca = Pca::fit(&data, rows, d, d).unwrap();
    for (k, (&got, &want)) in pca
        .explained_variance
        .iter()
        .zip(&oracle.values)
        .enumerate()
    {
        assert!(
            (f64::from(got) / want - 1.0).abs() < 1e-6,
            "variance {k}: {got} vs {want}"
        );
        let axis: Vec<f64> = pca.components[k * d..(k + 1) * d]
            .iter()
            .map(|&x| x.into())
            .collect();
        assert!(
            (dot64(&axis, oracle.vector(k).unwrap()) - 1.0).abs() < 1e-5,
            "component {k}"
        );
    }
}

#[test]
fn pca_components_are_orthonormal_and_projections_carry_explained_variance() {
    let (rows, d, p) = (2_000, 24, 6);
    let mut rng = rng(11);
    let q = random_orthogonal(d, &mut rng);
    let lambda: Vec<f64> = (0..d).map(|k| 0.5 + 0.3 * (d - k) as f64).collect();
    let data = gaussian_samples(rows, &vec![0.0; d], &q, &lambda, 12);
    let pca = Pca::fit(&data, rows, d, p).unwrap();

    assert!(pca.explained_variance.windows(2).all(|w| w[0] >= w[1]));
    for i in 0..p {
        for j in 0..=i {
            let a = &pca.components[i * d..(i + 1) * d];
            let b = &pca.components[j * d..(j + 1) * d];
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            assert!(
                (dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5,
                "c{i}·c{j} = {dot}"
            );
        }
    }
    let coords = pca.project(&data).unwrap();
    assert_eq!(coords.len(), rows * p);
    for k in 0..p {
        let column: Vec<f64> = coords
            .iter()
            .skip(k)
            .step_by(p)
            .map(|&x| x.into())
            .collect();
        let mean = column.iter().sum::<f64>() / rows as f64;
        let variance = column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (rows - 1) as f64;
        let want = f64::from(pca.explained_variance[k]);
        assert!(
            mean.abs() < 1e-4 * want.sqrt(),
            "coordinate {k} mean {mean}"
        );
        assert!(
            (variance / want - 1.0).abs() < 1e-4,
            "coordinate {k}: {variance} vs {want}"
        );
    }
}

#[test]
fn pca_fit_rejects_bad_arguments() {
    let data = vec![0.5_f32; 12];
    assert_eq!(
        invalid_field(&Pca::fit(&data[..4], 1, 4, 1).unwrap_err()),
        "rows"
    );
    assert_eq!(
        invalid_field(&Pca::fit(&data, 3, 4, 0).unwrap_err()),
        "components"
    );
    assert_eq!(
        invalid_field(&Pca::fit(&data, 3, 4, 5).unwrap_err()),
        "components"
    );
    assert_eq!(
        invalid_field(&Pca::fit(&data, 12, 0, 1).unwrap_err()),
        "dim"
    );
    assert_eq!(
        Pca::fit(&data, 4, 4, 2).unwrap_err(),
        Error::shape("data", &[4, 4], &[12])
    );
    let mut bad = data.clone();
    bad[7] = f32::NAN;
    let err = Pca::fit(&bad, 3, 4, 2).unwrap_err();
    assert!(
        matches!(err, Error::NonFinite { ref field, index: 7, .. } if field == "data"),
        "{err:?}"
    );
}

#[test]
fn pca_of_constant_data_has_zero_variance() {
    let pca = Pca::fit(&[2.0; 12], 4, 3, 2).unwrap();
    assert_eq!(pca.explained_variance, vec![0.0, 0.0]);
    assert_eq!(pca.project(&[2.0, 2.0, 2.0]).unwrap(), vec![0.0, 0.0]);
}

#[test]
fn pca_project_rejects_partial_rows() {
    let pca = Pca::fit(&[0.0, 1.0, 2.0, 1.0, 0.0, 3.0], 2, 3, 1).unwrap();
    let err = pca.project(&[1.0; 4]).unwrap_err();
    assert_eq!(shape_field(&err), "x");
    assert_eq!(pca.project(&[]).unwrap(), Vec::<f32>::new());
}

#[test]
fn pca_from_parts_accepts_a_fit_and_rejects_inconsistent_parts() {
    let (rows, d) = (200, 5);
    let mut rng = rng(13);
    let data: Vec<f32> = (0..rows * d)
        .map(|i| (normal(&mut rng) * (1 + i % d) as f64) as f32)
        .collect();
    let pca = Pca::fit(&data, rows, d, 2).unwrap();
    let rebuilt = Pca::from_parts(
        pca.mean.clone(),
        pca.components.clone(),
        pca.explained_variance.clone(),
        d,
    )
    .unwrap();
    assert_eq!(rebuilt, pca);

    let parts = |m: &Pca| {
        (
            m.mean.clone(),
            m.components.clone(),
            m.explained_variance.clone(),
        )
    };
    let (mean, comps, var) = parts(&pca);
    let err = Pca::from_parts(mean[..4].to_vec(), comps.clone(), var.clone(), d).unwrap_err();
    assert_eq!(err, Error::shape("mean", &[5], &[4]));
    let err = Pca::from_parts(mean.clone(), comps[..9].to_vec(), var.clone(), d).unwrap_err();
    assert_eq!(err, Error::shape("components", &[2, 5], &[9]));
    let err = Pca::from_parts(mean.clone(), Vec::new(), Vec::new(), d).unwrap_err();
    assert_eq!(shape_field(&err), "explained_variance");
    let err = Pca::from_parts(mean.clone(), comps.clone(), vec![var[1], var[0]], d).unwrap_err();
    assert_eq!(invalid_field(&err), "explained_variance");
    let err = Pca::from_parts(mean.clone(), comps.clone(), vec![var[0], -1.0], d).unwrap_err();
    assert_eq!(invalid_field(&err), "explained_variance");
    let scaled: Vec<f32> = comps.iter().map(|x| x * 2.0).collect();
    let err = Pca::from_parts(mean.clone(), scaled, var.clone(), d).unwrap_err();
    assert_eq!(invalid_field(&err), "components");
    let mut parallel = comps.clone();
    parallel.copy_within(0..d, d);
    let err = Pca::from_parts(mean.clone(), parallel, var.clone(), d).unwrap_err();
    assert_eq!(invalid_field(&err), "components");
    let err = Pca::from_parts(mean, comps, var, 0).unwrap_err();
    assert_eq!(invalid_field(&err), "dim");
}

// ---------------------------------------------------------------- kNN

/// Brute-force ranking in `f64`: (score, index), best first, ties to the lower index.
fn brute_force(gallery: &[f32], query: &[f32], dim: usize, metric: Metric) -> Vec<(f64, usize)> {
    let q: Vec<f64> = query.iter().map(|&x| x.into()).collect();
    let q_norm = dot64(&q, &q).sqrt();
    let mut scored: Vec<(f64, usize)> = gallery
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, row)| {
            let g: Vec<f64> = row.iter().map(|&x| x.into()).collect();
            let score = match metric {
                Metric::Cosine => {
                    let g_norm = dot64(&g, &g).sqrt();
                    if q_norm == 0.0 || g_norm == 0.0 {
                        0.0
                    } else {
                        dot64(&q, &g) / (q_norm * g_norm)
                    }
                }
                Metric::Euclidean => q.iter().zip(&g).map(|(a, b)| (a - b).powi(2)).sum(),
            };
            (score, i)
        })
        .collect();
    scored.sort_by(|a, b| match metric {
        Metric::Cosine => b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)),
        Metric::Euclidean => a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
    });
    scored
}

/// A gallery with duplicated rows (exact ties) and a zero row.
fn gallery_with_duplicates(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = rng(seed);
    let mut g: Vec<f32> = (0..rows * dim).map(|_| normal(&mut rng) as f32).collect();
    for (from, to) in [(3, 40), (3, 77), (10, 11), (50, 5), (120, 121)] {
        g.copy_within(from * dim..(from + 1) * dim, to * dim);
    }
    g[90 * dim..91 * dim].fill(0.0);
    g
}

fn check_against_brute_force(metric: Metric) {
    let (rows, dim, k) = (300, 37, 15);
    let gallery = gallery_with_duplicates(rows, dim, 14);
    let index = KnnIndex::new(gallery.clone(), dim, metric).unwrap();
    assert_eq!(
        (index.len(), index.dim(), index.metric()),
        (rows, dim, metric)
    );

    let mut rng = rng(15);
    // Fresh queries, gallery rows themselves (which have duplicates) and the zero vector.
    let mut queries: Vec<f32> = (0..40 * dim).map(|_| normal(&mut rng) as f32).collect();
    for row in [3, 10, 50, 120, 200, 90] {
        queries.extend_from_slice(&gallery[row * dim..(row + 1) * dim]);
    }
    let batch = index.search_batch(&queries, k).unwrap();
    assert_eq!(batch.len(), queries.len() / dim);

    for (qi, (query, found)) in queries.chunks_exact(dim).zip(&batch).enumerate() {
        assert_eq!(
            &index.search(query, k).unwrap(),
            found,
            "query {qi}: search vs batch"
        );
        let oracle = brute_force(&gallery, query, dim, metric);
        assert_eq!(found.len(), k);
        for (rank, hit) in found.iter().enumerate() {
            let (want_score, want_index) = oracle[rank];
            assert!(
                (f64::from(hit.score) - want_score).abs() < 1e-5 * (1.0 + want_score.abs()),
                "query {qi} rank {rank}: score {} vs {want_score}",
                hit.score
            );
            let near_tie = |other: Option<&(f64, usize)>| {
                other.is_some_and(|o| (o.0 - want_score).abs() < 1e-5 * (1.0 + want_score.abs()))
            };
            let ambiguous =
                near_tie(oracle.get(rank + 1)) || rank > 0 && near_tie(oracle.get(rank - 1));
            if !ambiguous || hit.index == want_index {
                assert_eq!(hit.index, want_index, "query {qi} rank {rank}");
            }
        }
        // Best first; exact ties in index order.
        for pair in found.windows(2) {
            let ordered = match metric {
                Metric::Cosine => pair[0].score > pair[1].score,
                Metric::Euclidean => pair[0].score < pair[1].score,
            };
            assert!(
                ordered || pair[0].score == pair[1].score && pair[0].index < pair[1].index,
                "query {qi}: {pair:?}"
            );
        }
    }
}

#[test]
fn knn_cosine_matches_brute_force_including_duplicate_rows() {
    check_against_brute_force(Metric::Cosine);
}

#[test]
fn knn_euclidean_matches_brute_force_including_duplicate_rows() {
    check_against_brute_force(Metric::Euclidean);
}

#[test]
fn knn_duplicate_rows_tie_with_lower_index_first() {
    let gallery = vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 5.0, 0.0];
    for metric in [Metric::Cosine, Metric::Euclidean] {
        let index = KnnIndex::new(gallery.clone(), 2, metric).unwrap();
        let found = index.search(&[1.0, 0.0], 4).unwrap();
        let order: Vec<usize> = found.iter().map(|n| n.index).collect();
        match metric {
            // Rows 0, 2 and 3 all point along x: cosine 1, tie broken by index.
            Metric::Cosine => assert_eq!(order, [0, 2, 3, 1]),
            Metric::Euclidean => assert_eq!(order, [0, 2, 1, 3]),
        }
        assert_eq!(found[0].score, found[1].score);
    }
}

#[test]
fn knn_zero_vectors_have_cosine_similarity_zero() {
    let index = KnnIndex::new(vec![0.0, 0.0, 3.0, 4.0, -3.0, -4.0], 2, Metric::Cosine).unwrap();
    let found = index.search(&[3.0, 4.0], 3).unwrap();
    assert_eq!(
        found,
        vec![
            Neighbour {
                index: 1,
                score: 1.0
            },
            Neighbour {
                index: 0,
                score: 0.0
            },
            Neighbour {
                index: 2,
                score: -1.0
            },
        ]
    );
    let from_zero = index.search(&[0.0, 0.0], 3).unwrap();
    assert!(from_zero.iter().all(|n| n.score == 0.0));
    assert_eq!(
        from_zero.iter().map(|n| n.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[test]
fn knn_k_beyond_gallery_returns_every_row_and_empty_gallery_returns_none() {
    let index = KnnIndex::new(vec![1.0, 2.0, 3.0], 1, Metric::Euclidean).unwrap();
    let found = index.search(&[2.9], 10).unwrap();
    assert_eq!(found.iter().map(|n| n.index).collect::<Vec<_>>(), [2, 1, 0]);

    let empty = KnnIndex::new(Vec::new(), 4, Metric::Cosine).unwrap();
    assert!(empty.is_empty());
    assert!(empty.search(&[1.0; 4], 3).unwrap().is_empty());
    assert_eq!(
        empty.search_batch(&[1.0; 8], 3).unwrap(),
        vec![Vec::new(), Vec::new()]
    );
}

#[test]
fn knn_batch_spanning_several_blocks_matches_single_queries() {
    let (rows, dim) = (500, 16);
    let mut rng = rng(16);
    let gallery: Vec<f32> = (0..rows * dim).map(|_| normal(&mut rng) as f32).collect();
    let queries: Vec<f32> = (0..75 * dim).map(|_| normal(&mut rng) as f32).collect();
    for metric in [Metric::Cosine, Metric::Euclidean] {
        let index = KnnIndex::new(gallery.clone(), dim, metric).unwrap();
        let batch = index.search_batch(&queries, 7).unwrap();
        let single: Vec<Vec<Neighbour>> = queries
            .chunks_exact(dim)
            .map(|q| index.search(q, 7).unwrap())
            .collect();
        assert_eq!(batch, single);
    }
}

#[test]
fn knn_rejects_bad_arguments() {
    let err = KnnIndex::new(vec![1.0; 10], 4, Metric::Cosine).unwrap_err();
    assert_eq!(err, Error::shape("features", &[2, 4], &[10]));
    assert_eq!(
        invalid_field(&KnnIndex::new(vec![1.0; 4], 0, Metric::Cosine).unwrap_err()),
        "dim"
    );
    let err = KnnIndex::new(vec![1.0, f32::INFINITY], 1, Metric::Euclidean).unwrap_err();
    assert!(matches!(err, Error::NonFinite { ref field, index: 1, .. } if field == "features"));

    let index = KnnIndex::new(vec![1.0; 12], 4, Metric::Euclidean).unwrap();
    assert_eq!(
        index.search(&[1.0; 3], 2).unwrap_err(),
        Error::shape("query", &[4], &[3])
    );
    assert_eq!(invalid_field(&index.search(&[1.0; 4], 0).unwrap_err()), "k");
    assert_eq!(
        shape_field(&index.search_batch(&[1.0; 6], 2).unwrap_err()),
        "queries"
    );
    assert_eq!(
        invalid_field(&index.search_batch(&[1.0; 8], 0).unwrap_err()),
        "k"
    );
    let err = index.search(&[1.0, f32::NAN, 1.0, 1.0], 1).unwrap_err();
    assert!(matches!(err, Error::NonFinite { ref field, .. } if field == "query"));
}

// ---------------------------------------------------------------- top_k

#[test]
fn top_k_matches_full_sort_with_ties_to_lower_index() {
    let mut rng = rng(17);
    // Few distinct values, so ties are everywhere.
    let scores: Vec<f32> = (0..1_000)
        .map(|_| (rng.next_u32() % 17) as f32 - 8.0)
        .collect();
    for larger_is_better in [true, false] {
        let mut all: Vec<usize> = (0..scores.len()).collect();
        all.sort_by(|&i, &j| {
            let by_score = scores[i].total_cmp(&scores[j]);
            let by_score = if larger_is_better {
                by_score.reverse()
            } else {
                by_score
            };
            by_score.then(i.cmp(&j))
        });
        for k in [1, 2, 10, 99, 999, 1_000, 5_000] {
            let want = &all[..k.min(scores.len())];
            assert_eq!(top_k(&scores, k, larger_is_better), want, "k = {k}");
        }
    }
}

#[test]
fn top_k_ranks_nan_last_and_treats_signed_zeros_as_equal() {
    let scores = [f32::NAN, 1.0, -0.0, 0.0, f32::NAN, -1.0];
    assert_eq!(top_k(&scores, 6, true), [1, 2, 3, 5, 0, 4]);
    assert_eq!(top_k(&scores, 6, false), [5, 2, 3, 1, 0, 4]);
    assert_eq!(top_k(&scores, 2, false), [5, 2]);
    assert!(top_k(&scores, 0, true).is_empty());
    assert!(top_k(&[], 3, true).is_empty());
}
