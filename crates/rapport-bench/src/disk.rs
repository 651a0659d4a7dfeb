//! The disk's own limits, measured where the systems under test write: small synchronous writes
//! per second (write 4 KiB + fdatasync, what a one-fsync-per-commit store is capped by) and
//! sequential write bandwidth (1 MiB writes, synced at the end).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// 4 KiB writes each followed by `fdatasync`, per second, on the disk holding `dir`.
pub fn syncs_per_second(dir: &Path, duration: Duration) -> std::io::Result<f64> {
    let path = dir.join("rapport-bench-sync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5a_u8; 4096];
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed() < duration {
        file.write_all(&block)?;
        file.sync_data()?;
        syncs += 1;
    }
    let rate = syncs as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok(rate)
}

/// Sequential write bandwidth in MB/s (10^6 bytes) on the disk holding `dir`: `megabytes` MiB
/// in 1 MiB writes, then one `fsync`, all timed.
pub fn write_megabytes_per_second(dir: &Path, megabytes: usize) -> std::io::Result<f64> {
    let path = dir.join("rapport-bench-write-probe");
    let mut file = std::fs::File::create(&path)?;
    // Not compressible, so a compressing file system cannot flatter it.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let block: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let started = Instant::now();
    for _ in 0..megabytes {
        file.write_all(&block)?;
    }
    file.sync_all()?;
    let rate = (megabytes << 20) as f64 / 1e6 / started.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok(rate)
}

/// Bytes of every file under `dir` (its allocated size, as `du` counts).
pub fn bytes_under(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => bytes_under(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
