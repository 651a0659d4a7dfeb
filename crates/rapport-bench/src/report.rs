//! The results table: one row per scenario and measure, each system's median over the runs, and
//! the ratio that says how many times better Rapport did (above 1: Rapport better).

use std::fmt::Write;

/// One measure of one scenario.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario.
    pub scenario: String,
    /// The measure and its unit (`events/s`, `p99 ms`).
    pub measure: String,
    /// Whether more is better (throughput) or less (latency, time, bytes).
    pub higher_is_better: bool,
    /// Rapport's value in each run.
    pub rapport: Vec<f64>,
    /// The peer's value in each run (empty: not measured).
    pub peer: Vec<f64>,
}

impl Row {
    /// Rapport's median.
    pub fn rapport_median(&self) -> Option<f64> {
        median(&self.rapport)
    }

    /// The peer's median.
    pub fn peer_median(&self) -> Option<f64> {
        median(&self.peer)
    }

    /// How many times better Rapport did than the peer (medians).
    pub fn ratio(&self) -> Option<f64> {
        let (rapport, peer) = (self.rapport_median()?, self.peer_median()?);
        let ratio = if self.higher_is_better { rapport / peer } else { peer / rapport };
        ratio.is_finite().then_some(ratio)
    }
}

/// The median (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] })
}

/// Every row, plus the disk's limits.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The rows, in scenario order.
    pub rows: Vec<Row>,
    /// 4 KiB write + fdatasync per second.
    pub disk_syncs_per_second: f64,
    /// Sequential write MB/s.
    pub disk_write_mb_per_second: f64,
}

impl Report {
    /// The table in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Disk: {} synced 4 KiB writes/s, {} MB/s sequential writes.\n",
            number(self.disk_syncs_per_second),
            number(self.disk_write_mb_per_second)
        );
        let _ = writeln!(
            out,
            "| scenario | measure | Rapport | PostgreSQL | Rapport ÷ PostgreSQL (better = above 1) | runs |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        for row in &self.rows {
            let show = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), number);
            let ratio = row.ratio().map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {ratio} | {} |",
                row.scenario,
                row.measure,
                show(row.rapport_median()),
                show(row.peer_median()),
                row.rapport.len().max(row.peer.len())
            );
        }
        out
    }
}

/// A figure for the table: thousands separated, two decimals below 100.
fn number(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.2}");
    }
    let whole = format!("{:.0}", value.round());
    let (sign, digits) = whole.split_at(usize::from(whole.starts_with('-')));
    let grouped: Vec<String> =
        digits.as_bytes().rchunks(3).rev().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    format!("{sign}{}", grouped.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios_point_the_right_way() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let throughput = Row {
            scenario: "s".into(),
            measure: "events/s".into(),
            higher_is_better: true,
            rapport: vec![300.0, 100.0, 200.0],
            peer: vec![50.0, 100.0],
        };
        assert_eq!(throughput.ratio(), Some(200.0 / 75.0));
        let latency = Row { higher_is_better: false, rapport: vec![2.0], peer: vec![8.0], ..throughput };
        assert_eq!(latency.ratio(), Some(4.0), "a quarter of the latency is 4× better");
    }

    #[test]
    fn figures_are_grouped() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(123.0), "123");
        assert_eq!(number(12.345), "12.35");
    }
}
