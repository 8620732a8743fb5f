//! The few OTLP protobuf messages a trace export needs, written by hand:
//! `ExportTraceServiceRequest` with one resource, one scope and its spans
//! (opentelemetry-proto's `trace/v1/trace.proto` and `common/v1/common.proto`).
//! A hand-written encoder of six messages costs less than the generated
//! code and its build dependencies, and is checked by the integration test's
//! independent decoder.

use super::FinishedSpan;

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `string_value` (1).
    Str(String),
    /// `bool_value` (2).
    Bool(bool),
    /// `int_value` (3).
    Int(i64),
    /// `double_value` (4).
    Double(f64),
}

/// Appends a base-128 varint.
fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// A length-delimited field (wire type 2).
fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A nested message, written into a scratch buffer for its length.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(out, field, &inner);
}

fn fixed64(out: &mut Vec<u8>, field: u32, n: u64) {
    key(out, field, 1);
    out.extend_from_slice(&n.to_le_bytes());
}

/// A `KeyValue` as field `field` of its parent.
fn key_value(out: &mut Vec<u8>, field: u32, name: &str, value: &AttrValue) {
    message(out, field, |kv| {
        bytes(kv, 1, name.as_bytes());
        message(kv, 2, |any| match value {
            AttrValue::Str(s) => bytes(any, 1, s.as_bytes()),
            AttrValue::Bool(b) => {
                key(any, 2, 0);
                varint(any, u64::from(*b));
            }
            AttrValue::Int(i) => {
                key(any, 3, 0);
                varint(any, *i as u64);
            }
            AttrValue::Double(d) => {
                key(any, 4, 1);
                any.extend_from_slice(&d.to_le_bytes());
            }
        });
    });
}

/// An `ExportTraceServiceRequest` of `spans` from the service `service`.
pub fn export_request(service: &str, spans: &[FinishedSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + spans.len() * 160);
    // resource_spans (1)
    message(&mut out, 1, |rs| {
        // resource (1) { attributes (1) }
        message(rs, 1, |resource| key_value(resource, 1, "service.name", &AttrValue::Str(service.to_owned())));
        // scope_spans (2)
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, b"blogql");
                bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for span in spans {
                message(ss, 2, |s| write_span(s, span));
            }
        });
    });
    out
}

fn write_span(s: &mut Vec<u8>, span: &FinishedSpan) {
    bytes(s, 1, &span.trace_id.0);
    bytes(s, 2, &span.span_id.0);
    if let Some(state) = &span.trace_state {
        bytes(s, 3, state.as_bytes());
    }
    if let Some(parent) = span.parent_id {
        bytes(s, 4, &parent.0);
    }
    bytes(s, 5, span.name.as_bytes());
    // kind (6): SERVER (2) for a request, INTERNAL (1) otherwise.
    key(s, 6, 0);
    varint(s, if span.server { 2 } else { 1 });
    fixed64(s, 7, span.start_unix_nanos);
    fixed64(s, 8, span.end_unix_nanos);
    for (name, value) in &span.attributes {
        key_value(s, 9, name, value);
    }
    if span.error {
        // status (15) { code (3) = ERROR (2) }
        message(s, 15, |status| {
            key(status, 3, 0);
            varint(status, 2);
        });
    }
}
