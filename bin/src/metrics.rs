//! The Prometheus scrape endpoint every Sluice process can serve.
//!
//! Services record through the `metrics` facade (counters, gauges, histograms by name); this
//! module installs the Prometheus recorder (`metrics-exporter-prometheus`) for the process
//! and serves its text exposition over plain HTTP/1.1 (hyper) at `GET /metrics`. The
//! listener is bound here, so port 0 works and the caller learns the real address.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::{debug, info};

/// Buckets for latency histograms, seconds: 50 µs to 5 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Installs the process's recorder and serves `/metrics` on `addr` from the current tokio
/// runtime; returns the address bound.
pub async fn serve(addr: SocketAddr) -> Result<SocketAddr> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .context("metrics histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder (is one installed already?)")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr} (is the port free?)"))?;
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        // Histograms are drained into their buckets by the upkeep.
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| respond(req, handle.clone()));
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
                {
                    debug!(%peer, error = %e, "metrics connection ended");
                }
            });
        }
    });
    info!(addr = %bound, "metrics at http://{bound}/metrics");
    Ok(bound)
}

async fn respond(
    req: Request<hyper::body::Incoming>,
    handle: PrometheusHandle,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", handle.render())
        }
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".into(),
        ),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "use GET /metrics\n".into()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(response)
}
