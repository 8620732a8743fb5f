//! OpenTelemetry traces over OTLP/HTTP (protobuf), when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set; nothing is exported, and no span is even created, otherwise.
//!
//! The spans are the ones blogql already makes, never one per field: a
//! request (`request`, continuing the caller's W3C `traceparent`), its
//! `parse`, `validate` and `execute` steps, each loader batch (`load`), each
//! store transaction (`transaction`) and read (`read`), and each reaper step.
//! [`layer`] samples and records them; [`export`] batches them to the
//! collector from one background task; [`proto`] writes the protobuf.
//!
//! Written here rather than with the opentelemetry crates: blogql needs six
//! protobuf messages, one sampler and one POST, and owning them keeps an
//! unsampled request at a look-up per span, with no allocation (the 1%
//! sampling benchmark in the README measures what that costs).

pub mod export;
pub mod layer;
pub mod proto;

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use proto::AttrValue;

use crate::telemetry::{SpanId, TraceId};

/// A span, recorded while it runs and exported when it ends.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    /// Its trace.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent: the caller's span for a request, else the span it ran in.
    pub parent_id: Option<SpanId>,
    /// The caller's `tracestate`, for a request that had one.
    pub trace_state: Option<String>,
    /// Its name.
    pub name: &'static str,
    /// Whether it is a server span (a request) rather than an internal one.
    pub server: bool,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, likewise.
    pub end_unix_nanos: u64,
    /// Its recorded fields.
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// Whether it ended in an error (`outcome` `error` or `rolled_back`).
    pub error: bool,
}

impl FinishedSpan {
    fn start(trace_id: TraceId, span_id: SpanId, parent_id: Option<SpanId>, name: &'static str, now: u64) -> Self {
        FinishedSpan {
            trace_id,
            span_id,
            parent_id,
            trace_state: None,
            name,
            server: false,
            start_unix_nanos: now,
            end_unix_nanos: now,
            attributes: Vec::new(),
            error: false,
        }
    }
}

/// Which traces are recorded: `OTEL_TRACES_SAMPLER` and its argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio`: this fraction of traces, chosen by trace id.
    Ratio(f64),
    /// `parentbased_*`: the caller's decision when it made one, else the inner sampler's.
    ParentBased(ParentBasedRoot),
}

/// What a parent-based sampler does for a trace that starts here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentBasedRoot {
    /// `parentbased_always_on` (the default).
    AlwaysOn,
    /// `parentbased_always_off`.
    AlwaysOff,
    /// `parentbased_traceidratio`.
    Ratio(f64),
}

impl Sampler {
    /// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name;
    /// an unknown name is an error (a typo must not silently sample everything).
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Sampler, String> {
        let ratio = || -> Result<f64, String> {
            match arg {
                None => Ok(1.0),
                Some(text) => match text.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(format!("OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, not {text:?}")),
                },
            }
        };
        Ok(match name.trim() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::Ratio(ratio()?),
            "parentbased_always_on" | "" => Sampler::ParentBased(ParentBasedRoot::AlwaysOn),
            "parentbased_always_off" => Sampler::ParentBased(ParentBasedRoot::AlwaysOff),
            "parentbased_traceidratio" => Sampler::ParentBased(ParentBasedRoot::Ratio(ratio()?)),
            other => return Err(format!("OTEL_TRACES_SAMPLER {other:?} is not a sampler blogql knows")),
        })
    }

    /// Whether a trace with this id is recorded; `caller` is the sampled flag
    /// of the caller's `traceparent`, when there was one.
    pub fn samples(self, trace_id: TraceId, caller: Option<bool>) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::Ratio(r) => by_ratio(trace_id, r),
            Sampler::ParentBased(root) => match (caller, root) {
                (Some(sampled), _) => sampled,
                (None, ParentBasedRoot::AlwaysOn) => true,
                (None, ParentBasedRoot::AlwaysOff) => false,
                (None, ParentBasedRoot::Ratio(r)) => by_ratio(trace_id, r),
            },
        }
    }
}

/// The spec's trace-id ratio rule: the id's last 8 bytes, read as a number,
/// below `ratio` of their range; so every service samples the same traces.
fn by_ratio(trace_id: TraceId, ratio: f64) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id.0[8..]);
    // Compared as integers: 2^63 - 1 rounds up to 2^63 as a float, so a
    // ratio of 1 would miss the top ids.
    let x = u64::from_be_bytes(low) >> 1;
    x < (ratio * (1u64 << 63) as f64) as u64
}

/// Where and how traces are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// The full URL spans are POSTed to (`…/v1/traces`).
    pub traces_url: String,
    /// `service.name`.
    pub service_name: String,
    /// The sampler.
    pub sampler: Sampler,
}

impl OtlpConfig {
    /// The configuration the `OTEL_*` settings describe, or `None` when no
    /// endpoint is set. `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as is;
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/traces` appended (the spec's rule).
    pub fn from_settings(settings: &crate::settings::TelemetrySettings) -> Result<Option<OtlpConfig>, String> {
        let url = match (&settings.otlp_traces_endpoint, &settings.otlp_endpoint) {
            (Some(traces), _) if !traces.is_empty() => traces.clone(),
            (_, Some(base)) if !base.is_empty() => format!("{}/v1/traces", base.trim_end_matches('/')),
            _ => return Ok(None),
        };
        if !url.starts_with("http://") {
            return Err(format!("the OTLP endpoint {url} is not http:// (run a collector beside blogql for TLS)"));
        }
        let sampler = Sampler::parse(&settings.traces_sampler, settings.traces_sampler_arg.as_deref())?;
        Ok(Some(OtlpConfig { traces_url: url, service_name: settings.service_name.clone(), sampler }))
    }
}

/// The installed exporter's sampler; unset when nothing is exported.
static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// The target of a root span whose trace is not exported: [`layer::Traceable`]
/// never takes a span of it, so when the logs do not want it either (at
/// `RUST_LOG=warn`) the span is never created, and neither is any span under it.
pub const UNTRACED: &str = "blogql::untraced";

/// Whether a trace starting here is exported, decided before its root span
/// exists (so an unsampled request pays for one sampler call, not a span).
/// The layer takes every root outside [`UNTRACED`] as sampled.
pub fn traces(trace_id: TraceId, caller: Option<bool>) -> bool {
    SAMPLER.get().is_some_and(|sampler| sampler.samples(trace_id, caller))
}

/// Spans the exporter could not take (its queue was full), since start-up;
/// `/metrics` reports it as `blogql_otlp_spans_dropped_total`.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's sampler names parse; a bad name or ratio is an error.
    #[test]
    fn samplers_parse_by_their_spec_names() {
        assert_eq!(Sampler::parse("always_on", None), Ok(Sampler::AlwaysOn));
        assert_eq!(Sampler::parse("traceidratio", Some("0.01")), Ok(Sampler::Ratio(0.01)));
        assert_eq!(Sampler::parse("", None), Ok(Sampler::ParentBased(ParentBasedRoot::AlwaysOn)));
        assert!(Sampler::parse("traceidratio", Some("2")).is_err());
        assert!(Sampler::parse("sometimes", None).is_err());
    }

    /// A parent-based sampler follows the caller's flag; a ratio samples about that fraction of random traces.
    #[test]
    fn sampling_follows_the_caller_and_the_ratio() {
        let parent = Sampler::ParentBased(ParentBasedRoot::AlwaysOff);
        assert!(parent.samples(TraceId::random(), Some(true)));
        assert!(!parent.samples(TraceId::random(), None));
        let sampled = (0..20_000).filter(|_| Sampler::Ratio(0.01).samples(TraceId::random(), None)).count();
        assert!((100..300).contains(&sampled), "{sampled} of 20,000 at 1%");
        assert!(!Sampler::Ratio(0.0).samples(TraceId([0xff; 16]), None));
        assert!(Sampler::Ratio(1.0).samples(TraceId([0xff; 16]), None));
    }
}
