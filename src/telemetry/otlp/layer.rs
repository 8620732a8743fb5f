//! The tracing layer that turns blogql's spans into OTLP spans.
//!
//! A trace starts at a span that names its trace (`trace_id`, and for a
//! request its own `span_id` and the caller's `parent_id`/`sampled`). The
//! sampler decided before that span was made ([`super::traces`]): a trace it
//! left out gets its root under [`super::UNTRACED`], which this layer never
//! takes, so every root it sees is sampled, and every span under it follows.
//! A span outside a sampled trace costs a look-up and no allocation; a sampled
//! span records its fields and, when it closes, is queued for the exporter
//! (dropped and counted if the queue is full, never waited for). Spans
//! outside any trace (start-up, a background read) are not exported.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::FinishedSpan;
use super::proto::AttrValue;
use crate::telemetry::{SpanId, TraceId};

/// What the layer keeps in a sampled span's extensions: the span being
/// recorded. A span of a trace the sampler left out gets nothing (so it
/// costs no allocation); its children find no parent to follow and carry
/// no trace id of their own, so they are left out too.
struct Traced(Box<FinishedSpan>);

/// The layer: the exporter's queue.
pub struct OtlpLayer {
    pub(super) queue: tokio::sync::mpsc::Sender<FinishedSpan>,
}

/// Fields that say where a span sits in a trace; they are not attributes.
const TRACE_FIELDS: [&str; 5] = ["trace_id", "span_id", "parent_id", "sampled", "tracestate"];

/// The trace fields a root span carries, read from its attributes.
#[derive(Default)]
struct Root {
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    parent_id: Option<SpanId>,
    tracestate: Option<String>,
}

impl Visit for Root {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "trace_id" => self.trace_id = parse_id::<16>(value).map(TraceId),
            "span_id" => self.span_id = parse_id::<8>(value).map(SpanId),
            "parent_id" => self.parent_id = parse_id::<8>(value).map(SpanId),
            "tracestate" => self.tracestate = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%id` fields arrive as Display-through-Debug: written into a stack
        // buffer, so reading a request's ids allocates nothing.
        if TRACE_FIELDS.contains(&field.name()) {
            let mut text = Hex::default();
            if std::fmt::write(&mut text, format_args!("{value:?}")).is_ok() {
                self.record_str(field, text.as_str());
            }
        }
    }
}

/// Room for a 32-digit id on the stack.
#[derive(Default)]
struct Hex {
    bytes: [u8; 32],
    len: usize,
}

impl Hex {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for Hex {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// An id from its lowercase hex (as blogql formats ids); never all zero.
fn parse_id<const N: usize>(text: &str) -> Option<[u8; N]> {
    crate::telemetry::context::hex::<N>(text).filter(|id| *id != [0u8; N])
}

/// Appends a span's fields as attributes (the trace fields aside).
struct Attrs<'a>(&'a mut Vec<(&'static str, AttrValue)>);

impl Attrs<'_> {
    fn put(&mut self, field: &Field, value: AttrValue) {
        if TRACE_FIELDS.contains(&field.name()) {
            return;
        }
        match self.0.iter_mut().find(|(name, _)| *name == field.name()) {
            Some(slot) => slot.1 = value,
            None => self.0.push((field.name(), value)),
        }
    }
}

impl Visit for Attrs<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, AttrValue::Str(value.to_owned()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, AttrValue::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, AttrValue::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, AttrValue::Double(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, AttrValue::Str(format!("{value:?}")));
    }
}

/// The spans that may start a trace: they carry a `trace_id` field.
const ROOTS: [&str; 2] = ["request", "reaper step"];

/// Which spans the layer is given at all: blogql's own at `info`, and of
/// those only a root, or a span opened inside a sampled span. So under a
/// trace the sampler left out (or outside any trace), a span is not even
/// created, and entering it on every poll costs nothing. A root whose trace
/// was decided against beforehand carries the [`UNTRACED`](super::UNTRACED)
/// target and is never taken.
pub struct Traceable;

impl<S> tracing_subscriber::layer::Filter<S> for Traceable
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if !traceable_callsite(meta) {
            return false;
        }
        ROOTS.contains(&meta.name())
            || cx.lookup_current().is_some_and(|span| span.extensions().get::<Traced>().is_some())
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if traceable_callsite(meta) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
}

/// A span of blogql's at `info` or above, outside the [`UNTRACED`](super::UNTRACED) target.
fn traceable_callsite(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span()
        && *meta.level() <= tracing::Level::INFO
        && meta.target().starts_with("blogql")
        && meta.target() != super::UNTRACED
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl<S> tracing_subscriber::Layer<S> for OtlpLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let inherited = span
            .parent()
            .and_then(|parent| parent.extensions().get::<Traced>().map(|Traced(p)| (p.trace_id, p.span_id)));
        let mut started = match inherited {
            Some((trace_id, parent)) => {
                FinishedSpan::start(trace_id, SpanId::random(), Some(parent), span.name(), now_nanos())
            }
            None => {
                let mut root = Root::default();
                attrs.record(&mut root);
                let Some(trace_id) = root.trace_id else { return };
                let mut started = FinishedSpan::start(
                    trace_id,
                    root.span_id.unwrap_or_else(SpanId::random),
                    root.parent_id,
                    span.name(),
                    now_nanos(),
                );
                started.server = span.name() == "request";
                started.trace_state = root.tracestate;
                started
            }
        };
        attrs.record(&mut Attrs(&mut started.attributes));
        span.extensions_mut().insert(Traced(Box::new(started)));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(Traced(started)) = span.extensions_mut().get_mut::<Traced>() {
            values.record(&mut Attrs(&mut started.attributes));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(Traced(mut done)) = span.extensions_mut().remove::<Traced>() else { return };
        done.end_unix_nanos = now_nanos();
        done.error = done.attributes.iter().any(|(name, value)| {
            *name == "outcome" && matches!(value, AttrValue::Str(s) if s == "error" || s == "rolled_back")
        });
        if self.queue.try_send(*done).is_err() {
            super::DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}
