//! What the process tells its operators: log lines ([`logs`]) and the
//! trace context each request joins ([`context`]).

pub mod context;
pub mod logs;

pub use context::{SpanId, TraceContext, TraceId};
pub use logs::LogFormat;
