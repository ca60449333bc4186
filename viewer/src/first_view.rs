//! The first view: what a visitor sees on a link that describes no view (the demo page, or the
//! address `mclr view` prints), so that the page already shows the point of the method — an
//! image's feature moving along a learned operator, and whether its neighbours keep the class.
//!
//! Which links open it is [`ViewState::opens_first_view`](crate::state::ViewState::opens_first_view)'s
//! decision; this module picks what it shows, deterministically: a representative anchor, the
//! operator of largest norm with coefficient 1, and the line of text that explains them.

/// The coefficient the first view gives the largest operator: one unit along Ψ, so that the path
/// over t ∈ [−T, T] is T(t·Ψ) z0.
pub const FIRST_VIEW_COEFFICIENT: f32 = 1.0;

/// A representative gallery image: in the class with the most images (ties: the lower label),
/// the image whose feature lies nearest (Euclidean) to that class's mean feature (ties: the lower
/// index). `None` for an empty gallery or shapes that disagree (`features` must be
/// `labels.len() × dim`).
pub fn representative_anchor(labels: &[u16], features: &[f32], dim: usize) -> Option<usize> {
    if dim == 0 || labels.is_empty() || features.len() != labels.len().checked_mul(dim)? {
        return None;
    }
    let mut counts = vec![0_usize; usize::from(u16::MAX) + 1];
    for &label in labels {
        if let Some(count) = counts.get_mut(usize::from(label)) {
            *count += 1;
        }
    }
    // The largest count; `max_by_key` keeps the last maximum, so compare (count, −label).
    let class = counts
        .iter()
        .enumerate()
        .max_by(|(a, ca), (b, cb)| ca.cmp(cb).then(b.cmp(a)))
        .and_then(|(c, _)| u16::try_from(c).ok())?;
    let members: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|&(_, &l)| l == class)
        .map(|(i, _)| i)
        .collect();
    let mut mean = vec![0.0_f64; dim];
    for &i in &members {
        for (m, &x) in mean.iter_mut().zip(features.get(i * dim..(i + 1) * dim)?) {
            *m += f64::from(x);
        }
    }
    // A class count is far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let n = members.len() as f64;
    for m in &mut mean {
        *m /= n;
    }
    let distance = |i: usize| -> f64 {
        features
            .get(i * dim..(i + 1) * dim)
            .map_or(f64::INFINITY, |row| {
                row.iter()
                    .zip(&mean)
                    .map(|(&x, &m)| (f64::from(x) - m).powi(2))
                    .sum()
            })
    };
    members
        .iter()
        .map(|&i| (i, distance(i)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(i, _)| i)
}

/// The one line under the first view: what moves (the anchor's feature along operator `m`, its
/// path in the scatter) and why the neighbours matter (if they keep `class_name`, the operator
/// changes the image but not its identity).
pub fn hint(class_name: &str, m: usize) -> String {
    format!(
        "Playing: the feature of this {class_name} image moving along Ψ{m}, the largest learned \
         operator (the line in the scatter). While its nearest neighbours below stay \
         {class_name}, Ψ{m} changes the image, not its identity."
    )
}

#[cfg(test)]
mod tests {
    use mclr_shared::bundle::synthetic::{SyntheticSpec, synthetic_bundle};

    use super::*;
    use crate::session::Session;

    #[test]
    fn the_anchor_is_the_image_nearest_the_mean_of_the_largest_class() {
        // Class 1 has three images (the most); its mean is (1, 1); image 3 sits on it.
        let labels = [0, 1, 1, 1, 0];
        let features = [
            0.0, 0.0, // 0
            0.0, 0.0, // 1
            2.0, 2.0, // 2
            1.0, 1.0, // 3 = the mean of class 1
            5.0, 5.0, // 4
        ];
        assert_eq!(representative_anchor(&labels, &features, 2), Some(3));
    }

    #[test]
    fn ties_go_to_the_lower_label_and_the_lower_index() {
        // Classes 2 and 0 both have two images: class 0 wins. Both of its images are as far
        // from its mean: image 1 (the lower index) wins.
        let labels = [2, 0, 2, 0];
        let features = [9.0, 0.0, 9.0, 2.0];
        assert_eq!(representative_anchor(&labels, &features, 1), Some(1));
    }

    #[test]
    fn bad_shapes_and_empty_galleries_give_none() {
        assert_eq!(representative_anchor(&[], &[], 2), None);
        assert_eq!(representative_anchor(&[0, 1], &[1.0; 3], 2), None);
        assert_eq!(representative_anchor(&[0], &[1.0], 0), None);
    }

    #[test]
    fn a_synthetic_bundle_gets_a_deterministic_anchor_in_its_largest_class() {
        let spec = SyntheticSpec {
            gallery: 64,
            classes: 5,
            ..SyntheticSpec::default()
        };
        let session = Session::from_bundle(synthetic_bundle(&spec).unwrap(), "s").unwrap();
        let pick = || representative_anchor(&session.labels, &session.features, session.dim());
        let anchor = pick().unwrap();
        assert_eq!(pick(), Some(anchor));
        let count = |l: u16| session.labels.iter().filter(|&&x| x == l).count();
        let largest = (0..5).map(count).max().unwrap();
        assert_eq!(count(session.labels[anchor]), largest);
    }

    #[test]
    fn the_hint_names_the_class_and_the_operator() {
        let text = hint("cat", 3);
        assert!(
            text.contains("this cat image") && text.contains("Ψ3"),
            "{text}"
        );
        assert!(text.contains("neighbours"), "{text}");
        assert!(!text.contains('\n'));
    }
}
