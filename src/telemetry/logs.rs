//! The process's log output: human-readable text (the default) or one JSON
//! object per line for a log pipeline (`--log-format json`).
//!
//! Every GraphQL request ends in one line at `info` under the target
//! `blogql::request` (`RUST_LOG=info,blogql::request=off` silences them):
//! its request id, trace id, operation name and type, outcome and duration.
//! No line carries a password, a token or a document's text at `info`: the
//! request line names the operation, never its text or variables.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`,
    /// the event's fields, and the spans it ran in (`spans`).
    Json,
}

/// Lines a request may queue for the writer thread before it waits for room
/// (a full queue slows requests rather than dropping lines).
const QUEUED_LINES: usize = 16_384;

/// The log layer: `RUST_LOG` filters it (default `info`); it writes to
/// stdout through a writer thread, so a request formats its line but never
/// waits on the write itself. Keep the guard until exit: dropping it flushes.
pub fn layer<S>(
    format: LogFormat,
) -> (Box<dyn tracing_subscriber::Layer<S> + Send + Sync>, tracing_appender::non_blocking::WorkerGuard)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: escape codes in a log file or pipe are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(false)
        .thread_name("blogql-log")
        .finish(std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer);
    let layer = match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => {
            fmt.json().flatten_event(true).with_current_span(false).with_span_list(true).with_filter(filter).boxed()
        }
    };
    (layer, guard)
}
