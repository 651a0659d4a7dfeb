//! Time decay that gives the same bits on every machine.
//!
//! `f64::powf` and `f64::exp` come from the platform's maths library, whose last bit may differ
//! between machines. Projections must be bit-identical everywhere, so the fade is computed
//! here with basic IEEE operations only (each of which is exactly rounded everywhere).

/// `2^(-age / half_life)`: 1 for a fresh signal, 0.5 after one half-life. Ages at or below 0
/// give 1; a non-positive half-life gives 0 for any positive age.
pub fn fade(age_nanos: i64, half_life_nanos: i64) -> f64 {
    if age_nanos <= 0 {
        return 1.0;
    }
    if half_life_nanos <= 0 {
        return 0.0;
    }
    let halvings = age_nanos / half_life_nanos;
    if halvings > 1_000 {
        return 0.0;
    }
    let fraction = (age_nanos % half_life_nanos) as f64 / half_life_nanos as f64;
    exp2_neg_fraction(fraction) * exp2_neg_integer(halvings as i32)
}

/// `2^(-n)` for `0 <= n <= 1000`, built from its bits (exact).
fn exp2_neg_integer(n: i32) -> f64 {
    if n > 1_022 {
        return 0.0;
    }
    f64::from_bits(((1_023 - n) as u64) << 52)
}

/// `2^(-x)` for `0 <= x < 1`: `e^(-x ln 2)` by its Taylor series to the 17th term, which
/// is within 1e-16 of the true value on this range.
fn exp2_neg_fraction(x: f64) -> f64 {
    let y = -x * std::f64::consts::LN_2;
    let mut sum = 1.0;
    let mut term = 1.0;
    for k in 1..=17 {
        term = term * y / f64::from(k);
        sum += term;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400 * 1_000_000_000;

    #[test]
    fn halves_each_half_life() {
        assert_eq!(fade(0, 180 * DAY), 1.0);
        assert_eq!(fade(-5, 180 * DAY), 1.0);
        assert_eq!(fade(180 * DAY, 180 * DAY), 0.5);
        assert_eq!(fade(360 * DAY, 180 * DAY), 0.25);
        assert_eq!(fade(DAY, 0), 0.0);
        assert_eq!(fade(2_000 * DAY, DAY), 0.0);
    }

    #[test]
    fn between_half_lives_it_matches_the_library_closely() {
        for (age, half) in [(1, 3), (90, 180), (45, 180), (179, 180), (200, 180), (1, 1_000)] {
            let ours = fade(age * DAY, half * DAY);
            let libm = (-(age as f64) / half as f64).exp2();
            assert!((ours - libm).abs() < 1e-15, "{age}/{half}: {ours} vs {libm}");
        }
    }
}
