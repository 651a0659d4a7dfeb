//! The data directory: which store `rapport serve` and `rapport import` open in it.
//!
//! A data directory holds the log in `log/` (the segment log) and the projections in
//! `projections/` (sled). A directory made before the segment log existed is one sled
//! database holding both; it is still served as it is, and `rapport export` then
//! `rapport import` into a new directory moves it to the segment log.

use std::path::Path;
use std::sync::Arc;

use rapport_segments::SegmentLog;
use rapport_sled::{SledLog, SledProjections};
use rapport_store::{EventLog, ProjectionStore, StoreError};
use tracing::warn;

/// The log and the projection store of a data directory.
pub(crate) struct Store {
    pub log: Arc<dyn EventLog>,
    pub projections: Arc<dyn ProjectionStore>,
}

/// Opens the stores in `dir`, creating an empty data directory if there is none.
pub(crate) fn open(dir: &Path) -> Result<Store, StoreError> {
    // sled keeps a `conf` and a `db` file at the top of its directory.
    if dir.join("conf").is_file() && dir.join("db").is_file() {
        warn!(
            data_dir = %dir.display(),
            "this data directory holds a sled log (the format before the segment log); it is served as it is, and \
             `rapport export` then `rapport import` into a new directory moves it to the faster segment log"
        );
        let log = Arc::new(SledLog::open(dir)?);
        let projections = Arc::new(log.projections());
        return Ok(Store { log, projections });
    }
    let log = Arc::new(SegmentLog::open(&dir.join("log"))?);
    let projections = Arc::new(SledProjections::open(&dir.join("projections"))?);
    Ok(Store { log, projections })
}
