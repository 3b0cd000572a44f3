//! `sluice_net::trace` without OpenTelemetry: the hooks a binary installs decide what trace
//! context a call carries, and the server hands the envelope's context to the hook for its
//! request span, on the multiplexed lane (small requests) and on a stream of its own (large).
//! (Its own test binary: the hooks are process-wide.)

use std::sync::Mutex;

use sluice_net::client::LANE_MAX_FRAME;
use sluice_net::perf::EchoRequest;
use sluice_net::trace::{self, Hooks};
use sluice_net::{ClientOptions, TraceContext};
use sluice_tests::{PerfServerHandle, TestPki};

const CALLER: TraceContext = TraceContext { trace_id: [7; 16], span_id: [9; 8], flags: 1 };

static PARENTS: Mutex<Vec<TraceContext>> = Mutex::new(Vec::new());

fn current() -> Option<TraceContext> {
    Some(CALLER)
}

fn set_parent(_span: &tracing::Span, parent: &TraceContext) {
    PARENTS.lock().unwrap_or_else(|p| p.into_inner()).push(*parent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_carry_the_hooks_context_and_the_server_parents_its_request_span_on_it() {
    assert!(!trace::enabled());
    assert!(trace::install(Hooks { current, set_parent }));
    assert!(!trace::install(Hooks { current, set_parent }), "only the first install counts");
    let pki = TestPki::new("hooks");
    let server = PerfServerHandle::start(&pki.node("s"), "s");
    let (_client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
    conn.call(EchoRequest::new(1, vec![1; 10])).await.expect("small call");
    conn.call(EchoRequest::new(2, vec![2; 2 * LANE_MAX_FRAME])).await.expect("large call");
    // An explicit context wins over the hook's.
    let explicit = TraceContext { trace_id: [3; 16], span_id: [4; 8], flags: 0 };
    conn.call_traced(EchoRequest::new(3, vec![3; 10]), Some(explicit)).await.expect("traced call");
    let parents = PARENTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(parents, vec![CALLER, CALLER, explicit]);
    server.stop().await;
}
