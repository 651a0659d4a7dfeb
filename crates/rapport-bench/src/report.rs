//! The results table: one row per scenario and measure, each system's median over the runs, and
//! the ratios: how many times better Rapport did than PostgreSQL (above 1: Rapport better), and
//! how much of the null service's figure it reached (the transport's ceiling: 1 is all of it).

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
    /// The null service's value in each run (empty: not measured).
    pub null: Vec<f64>,
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

    /// The null service's median.
    pub fn null_median(&self) -> Option<f64> {
        median(&self.null)
    }

    /// How many times better Rapport did than the peer (medians).
    pub fn ratio(&self) -> Option<f64> {
        self.better_than(self.peer_median()?)
    }

    /// How much of the null service's figure Rapport reached (medians): its rate over the null
    /// service's, or the null service's latency over its own.
    pub fn of_null(&self) -> Option<f64> {
        self.better_than(self.null_median()?)
    }

    fn better_than(&self, other: f64) -> Option<f64> {
        let rapport = self.rapport_median()?;
        let ratio = if self.higher_is_better { rapport / other } else { other / rapport };
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
        if let Some(floor) = self.one_client_floor_ms() {
            let _ = writeln!(
                out,
                "One client's floor: one sync ({:.3} ms) plus the null service's round trip ({:.3} ms) = {:.3} ms \
                 per append.\n",
                1_000.0 / self.disk_syncs_per_second,
                floor - 1_000.0 / self.disk_syncs_per_second,
                floor
            );
        }
        for (clients, ratio) in self.streamed_over_unary() {
            let _ = writeln!(out, "AppendStream ÷ unary Append, single events, {clients} clients: {ratio:.2}×.");
        }
        for (subscribers, ratio) in self.watched_over_unwatched() {
            let _ = writeln!(out, "Batches with {subscribers} live subscribers ÷ with none: {ratio:.2}×.");
        }
        if let Some((smallest, largest, growth)) = self.listing_growth() {
            let _ = writeln!(
                out,
                "ListAccounts page p50 at {} accounts ÷ at {}: {growth:.2}×.",
                grouped(&largest.to_string()),
                grouped(&smallest.to_string())
            );
        }
        let _ = writeln!(
            out,
            "\n| scenario | measure | Rapport | PostgreSQL | null service | Rapport ÷ PostgreSQL (better = above 1) \
             | Rapport ÷ null (1 = the transport's limit) | runs |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        let show = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), number);
        let times = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
        for row in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row.scenario,
                row.measure,
                show(row.rapport_median()),
                show(row.peer_median()),
                show(row.null_median()),
                times(row.ratio()),
                times(row.of_null()),
                row.rapport.len().max(row.peer.len()).max(row.null.len())
            );
        }
        out
    }

    /// The row of `scenario` and `measure`.
    pub fn row(&self, scenario: &str, measure: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.scenario == scenario && r.measure == measure)
    }

    /// The least one client can wait for an acknowledged append: one sync of the disk plus the
    /// null service's median round trip, in milliseconds.
    pub fn one_client_floor_ms(&self) -> Option<f64> {
        let null = self.row(&single_scenario(1), "p50 ms")?.null_median()?;
        (self.disk_syncs_per_second > 0.0).then(|| 1_000.0 / self.disk_syncs_per_second + null)
    }

    /// The median ListAccounts page at the largest portfolio measured against the smallest:
    /// (smallest, largest, largest's time ÷ smallest's). 1 is a page's cost independent of the
    /// portfolio's size.
    pub fn listing_growth(&self) -> Option<(usize, usize, f64)> {
        let sizes: Vec<(usize, f64)> = self
            .rows
            .iter()
            .filter(|r| r.measure == "page p50 ms")
            .filter_map(|r| {
                let accounts = r.scenario.strip_prefix("9. ListAccounts, ")?.strip_suffix(" accounts")?;
                Some((accounts.replace(',', "").parse().ok()?, r.rapport_median()?))
            })
            .collect();
        let smallest = sizes.iter().min_by_key(|(accounts, _)| *accounts)?;
        let largest = sizes.iter().max_by_key(|(accounts, _)| *accounts)?;
        (largest.0 > smallest.0).then(|| (smallest.0, largest.0, largest.1 / smallest.1))
    }

    /// Rapport's append rate with each number of live subscribers against its rate with none
    /// (scenario 10): (subscribers, ratio).
    pub fn watched_over_unwatched(&self) -> Vec<(usize, f64)> {
        let watched: Vec<(usize, f64)> = self
            .rows
            .iter()
            .filter(|r| r.measure == "events/s")
            .filter_map(|r| {
                let rest = r.scenario.strip_prefix("10. ")?;
                let subscribers = rest.rsplit(", ").next()?.strip_suffix(" live subscribers")?;
                Some((subscribers.parse().ok()?, r.rapport_median()?))
            })
            .collect();
        let Some(&(_, alone)) = watched.iter().find(|(subscribers, _)| *subscribers == 0) else { return Vec::new() };
        watched.iter().filter(|(subscribers, _)| *subscribers > 0).map(|&(s, rate)| (s, rate / alone)).collect()
    }

    /// Rapport's rate over `AppendStream` against its unary rate, at each client count both
    /// were measured at.
    pub fn streamed_over_unary(&self) -> Vec<(usize, f64)> {
        let rate = |scenario: String| self.row(&scenario, "events/s").and_then(Row::rapport_median);
        (1..=1_024)
            .filter_map(|clients| Some((clients, rate(streamed_scenario(clients))? / rate(single_scenario(clients))?)))
            .collect()
    }
}

/// The name of scenario 1 at `clients` clients.
pub fn single_scenario(clients: usize) -> String {
    format!("1. single-event appends, {clients} clients")
}

/// The name of scenario 10 with `subscribers` live subscribers.
pub fn watched_scenario(batch: usize, clients: usize, subscribers: usize) -> String {
    format!("10. {batch}-event batches, {clients} clients, {subscribers} live subscribers")
}

/// The name of scenario 9 at `accounts` accounts.
pub fn listing_scenario(accounts: usize) -> String {
    format!("9. ListAccounts, {} accounts", grouped(&accounts.to_string()))
}

/// The name of scenario 8 at `clients` clients.
pub fn streamed_scenario(clients: usize) -> String {
    format!("8. single events over AppendStream, {clients} clients")
}

/// A figure for the table: thousands separated, two decimals below 100.
fn number(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.2}");
    }
    grouped(&format!("{:.0}", value.round()))
}

/// A whole number's digits in groups of three.
fn grouped(whole: &str) -> String {
    let (sign, digits) = whole.split_at(usize::from(whole.starts_with('-')));
    let groups: Vec<String> =
        digits.as_bytes().rchunks(3).rev().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    format!("{sign}{}", groups.join(","))
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
            null: vec![400.0],
        };
        assert_eq!(throughput.ratio(), Some(200.0 / 75.0));
        assert_eq!(throughput.of_null(), Some(0.5), "half the transport's rate");
        let latency = Row { higher_is_better: false, rapport: vec![2.0], peer: vec![8.0], ..throughput };
        assert_eq!(latency.ratio(), Some(4.0), "a quarter of the latency is 4× better");
        let latency = Row { null: vec![0.5], ..latency };
        assert_eq!(latency.of_null(), Some(0.25), "four times the null service's latency");
    }

    #[test]
    fn figures_are_grouped() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(123.0), "123");
        assert_eq!(number(12.345), "12.35");
        assert_eq!(listing_scenario(50), "9. ListAccounts, 50 accounts");
        assert_eq!(listing_scenario(100_000), "9. ListAccounts, 100,000 accounts");
    }
}
