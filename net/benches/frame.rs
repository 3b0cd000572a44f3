//! The frame codec on the hot path: encode and decode a 100-byte echo and a 1 MiB bulk frame.
//!
//! `cargo bench -p sluice-net --bench frame`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_net::frame::{self, Envelope, LENGTH_PREFIX};
use sluice_net::perf::{EchoRequest, PerfRequest, SinkRequest};

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    let cases = [
        ("echo-100B", PerfRequest::Echo(EchoRequest::new(42, vec![7; 100]))),
        ("sink-1MiB", PerfRequest::Sink(SinkRequest { data: vec![7; 1 << 20].into() })),
    ];
    for (name, body) in cases {
        let env = Envelope::new(1, body);
        let encoded = frame::encode(&env, u32::MAX).expect("encode");
        g.throughput(Throughput::Bytes(encoded.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", name), &env, |b, env| {
            b.iter(|| frame::encode(env, u32::MAX).expect("encode"))
        });
        let payload = bytes::Bytes::from(encoded.to_vec()).slice(LENGTH_PREFIX..);
        g.bench_with_input(BenchmarkId::new("decode", name), &payload, |b, payload| {
            b.iter(|| frame::decode::<PerfRequest>(payload).expect("decode"))
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
