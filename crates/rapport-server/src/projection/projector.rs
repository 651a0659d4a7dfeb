//! The projector: a task that keeps every build but the active one caught up with the
//! durable log, and checkpoints every build on an interval.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use super::registry::Projections;

/// The projector: keeps every build other than the active one caught up with the durable log,
/// and checkpoints every build each `interval`. Runs until [`Projections::close`].
pub(crate) async fn follow(projections: Arc<Projections>, interval: Duration) {
    let mut durable = projections.durable_changed.subscribe();
    let mut last_checkpoint = Instant::now();
    while !projections.stopping.load(Ordering::Acquire) {
        let active = projections.active();
        for build in projections.builds() {
            if Arc::ptr_eq(&build, &active) || build.position() >= projections.durable_position() {
                continue;
            }
            let (p, b) = (Arc::clone(&projections), Arc::clone(&build));
            let caught_up = tokio::task::spawn_blocking(move || {
                let target = p.durable_position();
                // Stop when the server stops, when the build becomes the active one (the writer
                // folds that one from then on) or when a rebuild from scratch replaces it.
                let keep_going =
                    || !p.stopping.load(Ordering::Acquire) && !Arc::ptr_eq(&p.active(), &b) && p.is_registered(&b);
                b.catch_up(p.log.as_ref(), target, keep_going)
            })
            .await;
            match caught_up {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => warn!(build = %build.id, %error, "folding the log failed; retrying"),
                Err(error) => warn!(build = %build.id, %error, "the fold task failed; retrying"),
            }
        }
        if last_checkpoint.elapsed() >= interval {
            let p = Arc::clone(&projections);
            let _ = tokio::task::spawn_blocking(move || p.checkpoint_all()).await;
            last_checkpoint = Instant::now();
        }
        tokio::select! {
            _ = durable.changed() => {}
            _ = projections.kick.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
