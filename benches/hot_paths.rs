//! criterion micro-benchmarks of the append and rebuild hot paths, per event: validating a wire
//! event into the domain (`event_from_wire`), encoding it to the stored bytes, decoding stored
//! bytes back, hashing a recorded event into its chain, decoding a stored envelope, folding
//! one event into an account's projection, and what `GetAccount` does with an account (score
//! it, build its view). `cargo bench --bench hot_paths`.

// A benchmark: a failed unwrap is a failure with its message, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The allocator the `rapport` binary runs with, so that what is measured is what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rapport_domain::{AccountId, EventId, Limits, Timestamp};
use rapport_projection::{AccountProjection, Folded, RuleSet};
use rapport_store::{GENESIS_HASH, HashScheme, StoredEvent, chain_hash};

const NOW: i64 = 1_767_225_600;

fn hot_paths(c: &mut Criterion) {
    let limits = Limits::default();
    let mut workload = rapport_demo::Workload::new(5, 1, NOW, "hot");
    // The opening (account + three contacts), then a realistic mix of 1,000 events.
    let opening = workload.next_request_for(0, 4).events;
    let mix: Vec<_> = (0..1_000).flat_map(|_| workload.next_request_for(0, 1).events).collect();
    let domain: Vec<_> =
        mix.iter().map(|wire| rapport_wire::event_from_wire(wire.clone(), "event", &limits).unwrap()).collect();
    let payloads: Vec<_> = domain.iter().map(rapport_wire::encode_event).collect();
    let mean = payloads.iter().map(|p| p.len()).sum::<usize>() / payloads.len();
    eprintln!("{} events, {mean} encoded bytes on average", mix.len());

    let mut n = 0;
    let mut next = || {
        n = (n + 1) % mix.len();
        n
    };
    c.bench_function("validate a wire event (event_from_wire)", |b| {
        // The wire event is consumed, as the server's is; its copy is made outside the timing.
        b.iter_batched(
            || mix[next()].clone(),
            |wire| rapport_wire::event_from_wire(black_box(wire), "event", &limits),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("encode an event (stored bytes)", |b| {
        b.iter(|| rapport_wire::encode_event(black_box(&domain[next()])))
    });
    c.bench_function("decode stored bytes (event_from_bytes)", |b| {
        b.iter(|| rapport_wire::event_from_bytes(black_box(&payloads[next()])))
    });
    let account_id = AccountId::parse("hot-0", &limits).unwrap();
    let record = StoredEvent {
        account_id: account_id.clone(),
        version: 42,
        position: 4_242,
        recorded_at: Timestamp::from_unix_nanos(NOW * 1_000_000_000),
        event_id: EventId::from_bytes([7; 16]),
        recorded_by: "crm-sync".into(),
        payload: payloads[0].clone(),
        prev_hash: GENESIS_HASH,
        hash: GENESIS_HASH,
        scheme: HashScheme::Positioned,
    };
    c.bench_function("hash a recorded event (chain_hash)", |b| b.iter(|| chain_hash(black_box(&record))));
    // What every read of the log does per event: the envelope's bytes back to the event.
    let envelope = bytes::Bytes::from(rapport_envelope::encode_envelope(&record));
    c.bench_function("decode an envelope (decode_envelope)", |b| {
        b.iter(|| rapport_envelope::decode_envelope(record.position, black_box(envelope.clone())))
    });

    let rules = RuleSet::default_rules();
    let at = Timestamp::from_unix_nanos(NOW * 1_000_000_000);
    let opened: Vec<_> =
        opening.iter().map(|wire| rapport_wire::event_from_wire(wire.clone(), "event", &limits).unwrap()).collect();
    let folded = |event, version| Folded { event, version, position: version, recorded_at: at };
    let mut base = AccountProjection::open(account_id, folded(&opened[0], 1)).unwrap();
    for (i, event) in opened.iter().enumerate().skip(1) {
        base.apply(folded(event, i as u64 + 1), &rules);
    }
    // Warm: the account after the whole mix, so the fold works on a realistic picture.
    let mut warm = base.clone();
    for (i, event) in domain.iter().enumerate() {
        warm.apply(folded(event, i as u64 + 5), &rules);
    }
    // What the writer does to an account for each request before folding it: a copy of its
    // picture (the published one stays as readers hold it), and of the domain account that
    // `decide` folds the request into.
    c.bench_function("copy an account's projection (the writer, per request)", |b| b.iter(|| black_box(&warm).clone()));
    c.bench_function("copy an account (decide, per request)", |b| b.iter(|| black_box(&warm.account).clone()));
    // A 100-event request as the writer folds it: into a copy of the published picture.
    c.bench_function("fold a 100-event request into a copy of an account's projection", |b| {
        b.iter(|| {
            let mut copy = black_box(&warm).clone();
            for (i, event) in domain.iter().take(100).enumerate() {
                copy.apply(folded(event, 1_005 + i as u64), &rules);
            }
            copy
        })
    });
    // What `GetAccount` does with an account held in memory: score it at an instant, then
    // build its view (contacts opened, relationships, coverage, practice, scores); an account of
    // 20 events, as scenario 4 of the harness reads, and the warm one of 1,004.
    let mut small = base.clone();
    for (i, event) in domain.iter().take(16).enumerate() {
        small.apply(folded(event, i as u64 + 5), &rules);
    }
    let later = Timestamp::from_unix_nanos((NOW + 86_400) * 1_000_000_000);
    for (name, account) in [("20 events", &small), ("1,004 events", &warm)] {
        c.bench_function(&format!("score an account of {name} (GetAccount)"), |b| {
            b.iter(|| rapport_projection::scores(black_box(account), &rules, later))
        });
        let scored = rapport_projection::scores(account, &rules, later);
        c.bench_function(&format!("build the view of an account of {name} (GetAccount)"), |b| {
            b.iter(|| {
                rapport_wire::views::account_to_wire(
                    black_box(account),
                    &rules,
                    &scored,
                    &rapport_wire::sealing::NoKeys,
                )
            })
        });
    }
    let mut version = 1_005;
    c.bench_function("fold one event into an account's projection", |b| {
        b.iter(|| {
            version += 1;
            let i = next();
            warm.apply(folded(black_box(&domain[i]), version), &rules);
        })
    });
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
