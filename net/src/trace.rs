//! Distributed tracing hooks: how a request's trace context gets into its envelope and out of
//! it again, without this crate knowing any tracing backend.
//!
//! The binary that exports traces (OpenTelemetry in `sluice`) installs [`Hooks`] once at
//! start-up. Then:
//! - a client call made without an explicit [`TraceContext`] carries the one
//!   [`Hooks::current`] returns (the caller's current span's, if it has one);
//! - the server opens an `rpc` span per request ([`request_span`]) whose parent is the
//!   envelope's trace context, through [`Hooks::set_parent`].
//!
//! Without hooks (the default) nothing is traced and nothing is paid: no context is looked
//! up, no per-request span is made.

use std::sync::OnceLock;

use tracing::Span;

use crate::frame::TraceContext;
use crate::peer::Peer;
use crate::protocol::Protocol;

/// What the binary plugs in.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// The trace context of the current span (`tracing::Span::current()`), if it has one.
    pub current: fn() -> Option<TraceContext>,
    /// Makes `parent` (a remote caller's context) the parent of `span`.
    pub set_parent: fn(&Span, &TraceContext),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the hooks; only the first call counts (returns whether this one did).
pub fn install(hooks: Hooks) -> bool {
    HOOKS.set(hooks).is_ok()
}

/// Whether hooks are installed (traces are exported). Lets callers skip making spans that
/// only tracing would read.
pub fn enabled() -> bool {
    HOOKS.get().is_some()
}

/// The current span's trace context, if tracing is on and the span has one.
pub fn current() -> Option<TraceContext> {
    HOOKS.get().and_then(|h| (h.current)())
}

/// The trace context of `span` (entered for the look-up), if tracing is on and it has one.
pub fn context_of(span: &Span) -> Option<TraceContext> {
    if span.is_none() {
        return None;
    }
    span.in_scope(current)
}

/// Makes `parent` (a context from elsewhere: an envelope, a remembered request) the parent
/// of `span`, which must not have been entered yet. Does nothing when tracing is off.
pub fn set_parent(span: &Span, parent: &TraceContext) {
    if let Some(hooks) = HOOKS.get() {
        (hooks.set_parent)(span, parent);
    }
}

/// The server's span for one request of protocol `P`: `rpc`, with the request's name, the
/// protocol and the peer, child of the caller's trace context when the envelope carried one
/// (else a new trace).
/// [`Span::none`] when tracing is off.
pub fn request_span<P: Protocol>(peer: &Peer, request: &P::Request, parent: Option<&TraceContext>) -> Span {
    let Some(hooks) = HOOKS.get() else {
        return Span::none();
    };
    let rpc = P::request_name(request);
    // A root unless the envelope names a parent: not a child of the connection's span, or a
    // long-lived connection's untraced requests would all be one endless trace.
    let span = tracing::info_span!(
        parent: None,
        "rpc",
        otel.name = %format_args!("{} {rpc}", P::ALPN),
        otel.kind = "server",
        rpc,
        protocol = P::ALPN,
        peer = %peer.principal,
        remote = %peer.remote,
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = parent {
        (hooks.set_parent)(&span, parent);
    }
    record_trace_id(&span);
    span
}

/// Records the trace id (32 hex digits) in `span`'s `trace_id` field, if it declared one
/// (`trace_id = tracing::field::Empty`) and tracing is on: then every log line inside the
/// span carries it (the JSON format lists each span's fields).
pub fn record_trace_id(span: &Span) {
    if let Some(ctx) = context_of(span) {
        let hex = ctx.to_traceparent();
        // `00-<trace id>-<span id>-<flags>`
        span.record("trace_id", &hex[3..35]);
    }
}
