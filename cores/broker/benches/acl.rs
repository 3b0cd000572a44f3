//! The authorization check on every request: `Authorizer::authorize` against no ACLs and
//! against 1,000 (literal topics, prefixed topics, groups, for other principals, with the
//! caller's own grant among them), and the p50/p99/max of single checks (issue 21's
//! "authorization check p99 ≤ 10 µs").
//!
//! `cargo bench -p sluice-broker-core --bench acl`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sluice_broker_core::acl::{
    AccessEntry, AclCache, Authorizer, Operation, PatternType, Permission, Requester, ResourcePattern,
    ResourceType,
};

fn entry(principal: &str, operation: Operation) -> Vec<AccessEntry> {
    vec![AccessEntry {
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission: Permission::Allow,
    }]
}

fn pattern(resource_type: ResourceType, name: String, pattern_type: PatternType) -> ResourcePattern {
    ResourcePattern { resource_type, name, pattern_type }
}

/// `n` ACLs of others (half literal topics, a third prefixed topics, the rest groups), and
/// the producer's Write on `bench-topic`.
fn cache(n: usize) -> AclCache {
    let mut c = AclCache::new();
    for i in 0..n {
        let user = format!("User:u{i}");
        match i % 6 {
            0..=2 => c.set(
                &pattern(ResourceType::Topic, format!("other-{i}"), PatternType::Literal),
                entry(&user, Operation::Read),
            ),
            3 | 4 => c.set(
                &pattern(ResourceType::Topic, format!("pre-{i}-"), PatternType::Prefixed),
                entry(&user, Operation::Write),
            ),
            _ => c.set(
                &pattern(ResourceType::Group, format!("group-{i}"), PatternType::Literal),
                entry(&user, Operation::Read),
            ),
        }
    }
    c.set(
        &pattern(ResourceType::Topic, "bench-topic".into(), PatternType::Literal),
        entry("User:producer", Operation::Write),
    );
    c
}

fn check(c: &mut Criterion) {
    let authorizer = Authorizer::default();
    let who = Requester { user: "producer", host: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) };
    let mut g = c.benchmark_group("authorize");
    for n in [0usize, 1000] {
        let acls = cache(n);
        g.bench_with_input(BenchmarkId::new("produce-allowed", n), &acls, |b, acls| {
            b.iter(|| {
                authorizer.authorize(
                    acls,
                    black_box(&who),
                    Operation::Write,
                    ResourceType::Topic,
                    black_box("bench-topic"),
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("refused", n), &acls, |b, acls| {
            b.iter(|| {
                authorizer.authorize(
                    acls,
                    black_box(&who),
                    Operation::Read,
                    ResourceType::Topic,
                    black_box("pre-4-x"),
                )
            })
        });
    }
    g.finish();

    // One check at a time, timed alone: the distribution the p99 is about.
    let acls = cache(1000);
    let mut samples: Vec<Duration> = (0..200_000)
        .map(|i| {
            let topic = if i % 2 == 0 { "bench-topic" } else { "pre-4-x" };
            let started = Instant::now();
            black_box(authorizer.authorize(
                &acls,
                &who,
                Operation::Write,
                ResourceType::Topic,
                black_box(topic),
            ));
            started.elapsed()
        })
        .collect();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "authorize with 1,000 ACLs, 200,000 single checks: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

criterion_group!(benches, check);
criterion_main!(benches);
