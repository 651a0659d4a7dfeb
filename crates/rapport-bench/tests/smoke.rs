//! A small run of the whole harness, so that it cannot rot: every scenario against both
//! systems. It needs PostgreSQL's binaries (`apt-get install postgresql`; `.ci/run` installs
//! them). Without them it fails, saying so: a test that cannot run must not pass.

// A test: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_both_systems_and_fills_the_table() {
    assert!(
        rapport_bench::postgres::installed(),
        "PostgreSQL's binaries (initdb, pg_ctl) are not installed, so the harness cannot run its peer: \
         install them (`apt-get install postgresql`), or run `.ci/run`, which does"
    );
    let options = rapport_bench::Options::smoke();
    let report = rapport_bench::run(&options, &|step| eprintln!("{step}")).await.expect("the harness runs");
    let table = report.markdown();
    eprintln!("{table}");
    assert!(report.disk_syncs_per_second > 0.0 && report.disk_write_mb_per_second > 0.0);
    // Every scenario has both columns and a ratio.
    for prefix in ["1. ", "2. ", "3. ", "4. ", "5. ", "6. ", "7. "] {
        let rows: Vec<_> = report.rows.iter().filter(|r| r.scenario.starts_with(prefix)).collect();
        assert!(!rows.is_empty(), "scenario {prefix} is in the table:\n{table}");
        for row in rows {
            assert!(row.ratio().is_some(), "{} / {} has both figures:\n{table}", row.scenario, row.measure);
        }
    }
    // Every append's throughput row has the null service's figure beside it, and the streamed
    // scenario its ratio to unary appends.
    for row in report
        .rows
        .iter()
        .filter(|r| r.measure == "events/s" && ["1. ", "2. ", "3. ", "8. "].iter().any(|p| r.scenario.starts_with(p)))
    {
        assert!(row.of_null().is_some(), "{} has the null service's figure:\n{table}", row.scenario);
    }
    assert_eq!(report.streamed_over_unary().iter().map(|(clients, _)| *clients).collect::<Vec<_>>(), [1, 4]);
    assert!(report.one_client_floor_ms().is_some_and(|floor| floor > 0.0), "{table}");
    // Batches were appended with and without subscribers, and the subscribers' lag taken.
    assert_eq!(report.watched_over_unwatched().iter().map(|(s, _)| *s).collect::<Vec<_>>(), [2], "{table}");
    let caught_up =
        report.row("10. 20-event batches, 2 clients, 2 live subscribers", "slowest subscriber caught up after, ms");
    assert!(caught_up.and_then(|r| r.rapport_median()).is_some(), "{table}");
    // The portfolio is listed at both sizes, and the growth of a page between them is shown.
    for accounts in ["50", "200"] {
        let scenario = format!("9. ListAccounts, {accounts} accounts");
        let page = report.row(&scenario, "page p50 ms").and_then(|r| r.rapport_median());
        assert!(page.is_some_and(|ms| ms > 0.0), "{scenario} is timed:\n{table}");
    }
    assert!(report.listing_growth().is_some_and(|(small, large, _)| (small, large) == (50, 200)), "{table}");
    // What was appended was acknowledged: throughput is positive for both.
    let single = report.rows.iter().find(|r| r.scenario.starts_with("1. ") && r.measure == "events/s").unwrap();
    assert!(single.rapport_median().unwrap() > 0.0 && single.peer_median().unwrap() > 0.0);
    let disk = report.rows.iter().find(|r| r.measure == "bytes/event on disk").unwrap();
    let raw = report.rows.iter().find(|r| r.measure.starts_with("encoded event bytes")).unwrap();
    assert!(raw.rapport_median().unwrap() > 100.0, "realistic events are hundreds of bytes");
    assert!(disk.peer_median().unwrap() > 0.0 && disk.rapport_median().unwrap() > 0.0);
}
