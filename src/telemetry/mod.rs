//! What the process tells its operators: log lines ([`logs`]), the trace
//! context each request joins ([`context`]), and OpenTelemetry traces
//! exported over OTLP ([`otlp`]).

pub mod context;
pub mod logs;
pub mod otlp;

pub use context::{SpanId, TraceContext, TraceId};
pub use logs::LogFormat;

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::settings::TelemetrySettings;

/// Installs the global subscriber: the log layer, and the OTLP layer when
/// an endpoint is set. Each has its own filter, so `RUST_LOG=warn` quiets
/// the logs without turning traces off. Must run inside the runtime (the
/// exporter is a task). Keep the guard until exit: dropping it flushes the logs.
pub fn init(settings: &TelemetrySettings) -> Result<tracing_appender::non_blocking::WorkerGuard, String> {
    let otlp = otlp::OtlpConfig::from_settings(settings)?;
    let (logs, guard) = logs::layer(settings.log_format);
    // Only blogql's own spans at `info`, and only inside a sampled trace (see `Traceable`).
    let traces = otlp.map(|config| otlp::export::start(config).with_filter(otlp::layer::Traceable));
    tracing_subscriber::registry().with(logs).with(traces).try_init().map_err(|e| e.to_string())?;
    Ok(guard)
}
