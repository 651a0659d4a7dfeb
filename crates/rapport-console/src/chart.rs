//! Pictures as SVG, drawn on the server: how health is spread across a portfolio. Each has a
//! text alternative, and every value is also written, not only drawn.

use maud::{Markup, html};

/// Bars of how many accounts have health in each band of ten points.
pub(crate) fn distribution(counts: &[u32]) -> Markup {
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    let (width, height, bar) = (320.0, 90.0, 32.0);
    let total: u32 = counts.iter().sum();
    html! {
        svg.distribution viewBox=(format!("0 0 {width} {}", height + 30.0)) role="img"
            aria-label=(format!("Health of {total} accounts in bands of ten points")) {
            @for (band, &count) in counts.iter().enumerate() {
                @let h = height * f64::from(count) / f64::from(most);
                @let x = band as f64 * bar;
                rect.bar x=(x + 2.0) y=(height - h) width=(bar - 4.0) height=(h) data-band=(band * 10) data-count=(count) {
                    title { (format!("health {}–{}: {count}", band * 10, band * 10 + 10)) }
                }
                text.count x=(x + bar / 2.0) y=(height - h - 3.0) text-anchor="middle" { (count) }
                text.axis x=(x + bar / 2.0) y=(height + 16.0) text-anchor="middle" { (band * 10) }
            }
        }
    }
}
