//! What an operator watches, in the Prometheus text format: appends and events by type, append
//! latency, group sizes and sync durations as the writer sees them, and, read off the server's
//! state when scraped, the durable position, each build's position and lag, rebuild progress,
//! open subscriptions and how far behind the slowest is; and every RPC with its gRPC code.
//!
//! Each server has its own registry, so that the many servers of a test process do not count
//! into each other. The layer at the end counts RPCs where the access layer's refusals and the
//! services' answers both pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::projection::Projections;
use crate::subscribers::Subscribers;

/// The server's metrics, and the registry that holds them.
pub(crate) struct Metrics {
    registry: Registry,
    /// Append requests acknowledged (retries of recorded requests included).
    pub appends: IntCounter,
    /// Events newly recorded, by type (`meeting_held`, ...).
    pub events: IntCounterVec,
    /// Every RPC by method, and those that ended in an error by method and gRPC code.
    rpcs: IntCounterVec,
    rpc_errors: IntCounterVec,
    /// How long RPCs took to their answer (to the first message of a stream), by method.
    rpc_seconds: HistogramVec,
    /// Requests and events per group the writer commits, and how long the group's sync took.
    pub group_requests: Histogram,
    pub group_events: Histogram,
    pub sync_seconds: Histogram,
    /// Read off the state at each scrape.
    durable_position: IntGauge,
    build_position: IntGaugeVec,
    build_lag: IntGaugeVec,
    rebuild_progress: GaugeVec,
    subscriptions: IntGauge,
    subscription_lag: IntGauge,
    ready: Gauge,
}

/// Buckets of latencies: 50 µs to 10 s.
const SECONDS: &[f64] =
    &[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0];

/// Buckets of group sizes: 1 to 10,000.
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1_024.0, 10_000.0];

impl Metrics {
    /// A registry with every metric, at zero.
    pub(crate) fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        };
        let metrics = Metrics {
            appends: IntCounter::new("rapport_append_requests_total", "Append requests acknowledged.")?,
            events: IntCounterVec::new(
                Opts::new("rapport_events_appended_total", "Events newly recorded, by event type."),
                &["type"],
            )?,
            rpcs: IntCounterVec::new(Opts::new("rapport_rpcs_total", "RPCs received, by method."), &["method"])?,
            rpc_errors: IntCounterVec::new(
                Opts::new("rapport_rpc_errors_total", "RPCs answered with an error, by method and gRPC code."),
                &["method", "code"],
            )?,
            rpc_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "rapport_rpc_seconds",
                    "Time to an RPC's answer (a stream's first message), by method.",
                )
                .buckets(SECONDS.to_vec()),
                &["method"],
            )?,
            group_requests: histogram(
                "rapport_group_requests",
                "Append requests per group the writer commits.",
                SIZES,
            )?,
            group_events: histogram("rapport_group_events", "Events per group the writer commits.", SIZES)?,
            sync_seconds: histogram("rapport_sync_seconds", "Time to make a group durable (the log's sync).", SECONDS)?,
            durable_position: IntGauge::new("rapport_durable_position", "The log's durable position.")?,
            build_position: IntGaugeVec::new(
                Opts::new("rapport_projection_position", "The log position each build has folded, by rule set."),
                &["rule_set"],
            )?,
            build_lag: IntGaugeVec::new(
                Opts::new("rapport_projection_lag_events", "Durable events a build has not folded yet, by rule set."),
                &["rule_set"],
            )?,
            rebuild_progress: GaugeVec::new(
                Opts::new("rapport_rebuild_progress_ratio", "How far each build is through the log, 0 to 1."),
                &["rule_set"],
            )?,
            subscriptions: IntGauge::new("rapport_subscriptions_open", "Open subscriptions.")?,
            subscription_lag: IntGauge::new(
                "rapport_subscription_lag_events_max",
                "Durable events the slowest open subscription has not been sent yet.",
            )?,
            ready: Gauge::new("rapport_ready", "1 when the active projection has caught up and the log is writable.")?,
            registry,
        };
        for collector in metrics.collectors() {
            metrics.registry.register(collector)?;
        }
        Ok(metrics)
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.appends.clone()),
            Box::new(self.events.clone()),
            Box::new(self.rpcs.clone()),
            Box::new(self.rpc_errors.clone()),
            Box::new(self.rpc_seconds.clone()),
            Box::new(self.group_requests.clone()),
            Box::new(self.group_events.clone()),
            Box::new(self.sync_seconds.clone()),
            Box::new(self.durable_position.clone()),
            Box::new(self.build_position.clone()),
            Box::new(self.build_lag.clone()),
            Box::new(self.rebuild_progress.clone()),
            Box::new(self.subscriptions.clone()),
            Box::new(self.subscription_lag.clone()),
            Box::new(self.ready.clone()),
        ]
    }

    /// Counts the events of an acknowledged append that were newly recorded.
    pub(crate) fn appended<'a>(&self, kinds: impl Iterator<Item = &'a str>) {
        self.appends.inc();
        for kind in kinds {
            self.events.with_label_values(&[kind]).inc();
        }
    }

    /// The text exposition, with the gauges read off the server as it is now (`None` while it
    /// starts: positions are not known yet).
    /// Counts a request of an `AppendStream` answered with an error, as a unary RPC's error
    /// is counted (the stream itself answers OK).
    pub(crate) fn refused_in_stream(&self, code: tonic::Code) {
        self.rpc_errors.with_label_values(&["rapport.v1.Ledger/AppendStream", &format!("{code:?}")]).inc();
    }

    pub(crate) fn render(&self, now: Option<(&Projections, &Subscribers)>, ready: bool) -> String {
        self.ready.set(if ready { 1.0 } else { 0.0 });
        if let Some((projections, subscribers)) = now {
            let durable = projections.durable_position();
            self.durable_position.set(gauge(durable));
            self.build_position.reset();
            self.build_lag.reset();
            self.rebuild_progress.reset();
            for build in projections.builds() {
                let position = build.position();
                let id = [build.id.as_str()];
                self.build_position.with_label_values(&id).set(gauge(position));
                self.build_lag.with_label_values(&id).set(gauge(durable.saturating_sub(position)));
                let progress = if durable == 0 { 1.0 } else { (position as f64 / durable as f64).min(1.0) };
                self.rebuild_progress.with_label_values(&id).set(progress);
            }
            let cursors = subscribers.cursors();
            self.subscriptions.set(gauge(cursors.len() as u64));
            // A cursor is the next position a subscription considers.
            let slowest = cursors.iter().map(|&next| durable.saturating_sub(next.saturating_sub(1))).max();
            self.subscription_lag.set(gauge(slowest.unwrap_or(0)));
        }
        let mut text = Vec::new();
        // Encoding into a vector of the registry's own families cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut text);
        String::from_utf8(text).unwrap_or_default()
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The layer that counts every RPC: by method when it arrives, by method and code when its
/// answer carries an error in its headers (a refusal, or a unary error). An error a stream
/// ends with after its first message is in its trailers and not counted here.
#[derive(Clone)]
pub(crate) struct Count(pub Arc<Metrics>);

impl<S> tower_layer::Layer<S> for Count {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner, metrics: Arc::clone(&self.0) }
    }
}

/// A service whose RPCs are counted.
#[derive(Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type Reply<E> = Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for Counted<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Reply<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Only the server's own methods are counted by name, so that labels stay few whatever
        // paths clients send.
        let path = request.uri().path();
        let method = if path.starts_with("/rapport.v1.") || path.starts_with("/grpc.") { path } else { "other" };
        let method = method.trim_start_matches('/').to_owned();
        self.metrics.rpcs.with_label_values(&[&method]).inc();
        let (metrics, started) = (Arc::clone(&self.metrics), Instant::now());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            metrics.rpc_seconds.with_label_values(&[&method]).observe(started.elapsed().as_secs_f64());
            let code = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0");
            if code != "0" {
                let name = format!("{:?}", tonic::Code::from_bytes(code.as_bytes()));
                metrics.rpc_errors.with_label_values(&[&method, &name]).inc();
            }
            Ok(response)
        })
    }
}
