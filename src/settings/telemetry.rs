//! The telemetry section of the settings tree.

use clap::Args;

use super::defaults;

/// Logs and traces: how the process tells its operators what it does. Read
/// by every subcommand, so each flag is global. The OpenTelemetry settings
/// take the standard `OTEL_*` variables.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Telemetry")]
pub struct TelemetrySettings {
    /// How log lines are written: `text`, or `json` (one object per line).
    #[arg(long, env = "BLOGQL_LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub log_format: crate::telemetry::LogFormat,
    /// Export traces over OTLP/HTTP (protobuf) to this collector base URL
    /// (`/v1/traces` is appended); unset, nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// The full URL to export traces to, used as is (overrides `--otlp-endpoint`).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", global = true)]
    pub otlp_traces_endpoint: Option<String>,
    /// The `service.name` of exported spans.
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME", default_value = defaults::OTEL_SERVICE_NAME, global = true)]
    pub service_name: String,
    /// Which traces are exported: `parentbased_always_on` (the caller's
    /// choice, else all), `parentbased_traceidratio`, `traceidratio`,
    /// `always_on`, `always_off`, `parentbased_always_off`.
    #[arg(
        long = "otel-traces-sampler",
        env = "OTEL_TRACES_SAMPLER",
        default_value = defaults::OTEL_TRACES_SAMPLER,
        global = true
    )]
    pub traces_sampler: String,
    /// The ratio of a `*traceidratio` sampler, 0 to 1 (default 1).
    #[arg(long = "otel-traces-sampler-arg", env = "OTEL_TRACES_SAMPLER_ARG", global = true)]
    pub traces_sampler_arg: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            log_format: crate::telemetry::LogFormat::Text,
            otlp_endpoint: None,
            otlp_traces_endpoint: None,
            service_name: defaults::OTEL_SERVICE_NAME.into(),
            traces_sampler: defaults::OTEL_TRACES_SAMPLER.into(),
            traces_sampler_arg: None,
        }
    }
}
