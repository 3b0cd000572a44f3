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
        let bytes = frame::encode(&env, u32::MAX).expect("encode");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", name), &env, |b, env| {
            let mut buf = Vec::with_capacity(bytes.len());
            b.iter(|| {
                buf.clear();
                frame::encode_into(&mut buf, env, u32::MAX).expect("encode");
            })
        });
        g.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
            b.iter(|| frame::decode::<PerfRequest>(&bytes[LENGTH_PREFIX..]).expect("decode"))
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
