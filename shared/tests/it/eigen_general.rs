//! `eigenvalues_general` against closed forms: rotation/scaling blocks, triangular matrices,
//! companion matrices of polynomials with known roots, similarity-invariant sums and products
//! of random matrices, and the stable-init operator blocks of Ψ.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mclr_shared::Error;
use mclr_shared::geometry::eigenvalues_general;
use mclr_shared::operators::Operators;

/// A small deterministic generator (xorshift64*) giving values in [−1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (bits as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// Sorts expected eigenvalues the way the solver does.
fn sorted(mut values: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    values.sort_by(|x, y| y.0.total_cmp(&x.0).then(y.1.total_cmp(&x.1)));
    values
}

/// Every expected eigenvalue is matched by a distinct computed one within `tol` (order-free).
fn assert_same_spectrum(got: &[(f64, f64)], expected: &[(f64, f64)], tol: f64) {
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    let mut used = vec![false; got.len()];
    for &(re, im) in expected {
        let best = got
            .iter()
            .enumerate()
            .filter(|(i, _)| !used[*i])
            .min_by(|(_, a), (_, b)| {
                let da = (a.0 - re).hypot(a.1 - im);
                let db = (b.0 - re).hypot(b.1 - im);
                da.total_cmp(&db)
            })
            .unwrap();
        let distance = (best.1.0 - re).hypot(best.1.1 - im);
        assert!(
            distance <= tol,
            "expected {re} + {im}i, nearest {:?} ({distance}); all {got:?}",
            best.1
        );
        used[best.0] = true;
    }
}

/// Complex product of the eigenvalues.
fn product(values: &[(f64, f64)]) -> (f64, f64) {
    values.iter().fold((1.0, 0.0), |(pr, pi), &(re, im)| {
        (pr * re - pi * im, pr * im + pi * re)
    })
}

/// Determinant by Gaussian elimination with partial pivoting (the dense reference).
fn determinant(a: &[f64], n: usize) -> f64 {
    let mut m = a.to_vec();
    let mut det = 1.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| m[i * n + col].abs().total_cmp(&m[j * n + col].abs()))
            .unwrap();
        if m[pivot * n + col] == 0.0 {
            return 0.0;
        }
        if pivot != col {
            for j in 0..n {
                m.swap(pivot * n + j, col * n + j);
            }
            det = -det;
        }
        det *= m[col * n + col];
        for i in col + 1..n {
            let f = m[i * n + col] / m[col * n + col];
            for j in col..n {
                m[i * n + j] -= f * m[col * n + j];
            }
        }
    }
    det
}

/// The companion matrix of the monic polynomial with the given real and complex-pair roots.
fn companion(roots: &[(f64, f64)]) -> Vec<f64> {
    // Polynomial coefficients, lowest degree first, complex arithmetic.
    let mut poly: Vec<(f64, f64)> = vec![(1.0, 0.0)];
    for &(re, im) in roots {
        let mut next = vec![(0.0, 0.0); poly.len() + 1];
        for (i, &(pr, pi)) in poly.iter().enumerate() {
            next[i + 1].0 += pr;
            next[i + 1].1 += pi;
            next[i].0 -= pr * re - pi * im;
            next[i].1 -= pr * im + pi * re;
        }
        poly = next;
    }
    let n = roots.len();
    let mut a = vec![0.0; n * n];
    for i in 1..n {
        a[i * n + i - 1] = 1.0;
    }
    for i in 0..n {
        // Real because complex roots come in conjugate pairs.
        assert!(poly[i].1.abs() < 1e-9);
        a[i * n + n - 1] = -poly[i].0;
    }
    a
}

#[test]
fn rotation_scaling_block_has_eigenvalues_a_plus_minus_ib() {
    for (a, b) in [(0.0, 1.0), (-0.3, 2.5), (1e-5, -3.0), (4.0, 1e-3)] {
        let m = [a, -b, b, a];
        let got = eigenvalues_general(&m, 2).unwrap();
        let b = f64::abs(b);
        assert!(
            (got[0].0 - a).abs() < 1e-12 && (got[0].1 - b).abs() < 1e-12,
            "{got:?}"
        );
        assert!(
            (got[1].0 - a).abs() < 1e-12 && (got[1].1 + b).abs() < 1e-12,
            "{got:?}"
        );
    }
}

#[test]
fn a_general_two_by_two_matches_the_quadratic_formula() {
    let mut rng = Rng(7);
    for _ in 0..200 {
        let (a, b, c, d) = (rng.next(), rng.next(), rng.next(), rng.next());
        let half_trace = 0.5 * (a + d);
        let disc = half_trace * half_trace - (a * d - b * c);
        let expected = if disc >= 0.0 {
            vec![
                (half_trace + disc.sqrt(), 0.0),
                (half_trace - disc.sqrt(), 0.0),
            ]
        } else {
            vec![(half_trace, (-disc).sqrt()), (half_trace, -(-disc).sqrt())]
        };
        let got = eigenvalues_general(&[a, b, c, d], 2).unwrap();
        assert_same_spectrum(&got, &expected, 1e-7);
    }
}

#[test]
fn triangular_matrices_have_their_diagonal_as_eigenvalues() {
    let mut rng = Rng(11);
    for n in [1, 3, 5, 8] {
        let mut upper = vec![0.0; n * n];
        let diagonal: Vec<f64> = (0..n).map(|i| i as f64 - 2.5).collect();
        for i in 0..n {
            for j in i..n {
                upper[i * n + j] = if i == j { diagonal[i] } else { rng.next() };
            }
        }
        let lower: Vec<f64> = (0..n * n).map(|x| upper[(x % n) * n + x / n]).collect();
        let expected: Vec<(f64, f64)> = diagonal.iter().map(|&d| (d, 0.0)).collect();
        for m in [&upper, &lower] {
            let got = eigenvalues_general(m, n).unwrap();
            assert_same_spectrum(&got, &expected, 1e-9);
            assert_eq!(got, sorted(got.clone()));
        }
    }
}

#[test]
fn companion_matrices_have_their_polynomials_roots() {
    let cases: Vec<Vec<(f64, f64)>> = vec![
        vec![(1.0, 0.0), (2.0, 0.0), (3.0, 0.0)],
        vec![(-1.0, 0.0), (0.5, 2.0), (0.5, -2.0)],
        vec![
            (0.3, 1.0),
            (0.3, -1.0),
            (-0.2, 0.5),
            (-0.2, -0.5),
            (4.0, 0.0),
        ],
        vec![
            (1.0, 0.0),
            (-2.0, 0.0),
            (0.0, 3.0),
            (0.0, -3.0),
            (1.5, 0.25),
            (1.5, -0.25),
            (-0.75, 0.0),
            (2.5, 0.0),
        ],
    ];
    for roots in cases {
        let n = roots.len();
        let got = eigenvalues_general(&companion(&roots), n).unwrap();
        assert_same_spectrum(&got, &roots, 1e-7);
    }
}

#[test]
fn random_matrices_keep_trace_and_determinant() {
    let mut rng = Rng(2024);
    for n in 1..=12 {
        for _ in 0..10 {
            let a: Vec<f64> = (0..n * n).map(|_| rng.next()).collect();
            let got = eigenvalues_general(&a, n).unwrap();
            assert_eq!(got.len(), n);
            let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
            let sum_re: f64 = got.iter().map(|v| v.0).sum();
            let sum_im: f64 = got.iter().map(|v| v.1).sum();
            assert!((trace - sum_re).abs() < 1e-9, "trace {trace} vs {sum_re}");
            assert!(sum_im.abs() < 1e-9);
            let (det_re, det_im) = product(&got);
            let det = determinant(&a, n);
            assert!(
                (det - det_re).abs() < 1e-8 * (1.0 + det.abs()),
                "{det} vs {det_re}"
            );
            assert!(det_im.abs() < 1e-8 * (1.0 + det.abs()));
            // Complex eigenvalues come in conjugate pairs.
            for &(re, im) in got.iter().filter(|v| v.1 != 0.0) {
                assert!(got.iter().any(|&(r, i)| r == re && i == -im), "{got:?}");
            }
        }
    }
}

#[test]
fn stable_init_operator_blocks_are_near_pure_rotations() {
    let mut rng = Rng(5);
    let ops = Operators::stable_init(3, 2, 6, || ((rng.next() + 1.0) * 0.5) as f32).unwrap();
    for m in 0..3 {
        for k in 0..2 {
            let block: Vec<f64> = ops
                .generator(m, k)
                .unwrap()
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            let (r, w) = (block[0], block[6]);
            let expected = vec![(r, w), (r, -w), (r, w), (r, -w), (r, w), (r, -w)];
            let got = eigenvalues_general(&block, 6).unwrap();
            assert_same_spectrum(&got, &expected, 1e-9);
        }
    }
}

#[test]
fn extreme_scales_neither_overflow_nor_underflow() {
    for scale in [1e300, 1e-300, 1e-310] {
        let m = [0.0, -scale, scale, 0.0];
        let got = eigenvalues_general(&m, 2).unwrap();
        assert!((got[0].1 - scale).abs() <= 1e-12 * scale, "{got:?}");
    }
    assert_eq!(
        eigenvalues_general(&[0.0; 9], 3).unwrap(),
        vec![(0.0, 0.0); 3]
    );
    assert_eq!(eigenvalues_general(&[], 0).unwrap(), vec![]);
}

#[test]
fn malformed_input_is_a_typed_error() {
    assert!(matches!(
        eigenvalues_general(&[1.0, 2.0, 3.0], 2),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        eigenvalues_general(&[1.0, f64::NAN, 0.0, 1.0], 2),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(eigenvalues_general(&[], usize::MAX).is_err());
}
