//! Custom scalars, described for client developers rather than by the Rust type behind them.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, Utc};

/// A point in time: an RFC 3339 timestamp in UTC with millisecond precision,
/// for example `2026-11-23T15:04:05.123Z`. Strings of this form sort in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub bson::DateTime);

/// A point in time: an RFC 3339 timestamp in UTC with millisecond precision,
/// for example `2026-11-23T15:04:05.123Z`. Strings of this form sort in time order.
#[Scalar(name = "DateTime", specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339")]
impl ScalarType for Timestamp {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => {
                let at = chrono::DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc);
                Ok(Timestamp(bson::DateTime::from_chrono(at)))
            }
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_chrono().to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The output is fixed-width UTC with a `Z`, and parses back to the same instant.
    #[test]
    fn format_is_rfc3339_utc_millis() {
        let t = Timestamp(bson::DateTime::from_millis(1_795_446_245_123));
        assert_eq!(t.to_value(), Value::String("2026-11-23T15:04:05.123Z".into()));
        assert!(Timestamp::parse(Value::Number(1.into())).is_err());
        assert!(Timestamp::parse(Value::String("yesterday".into())).is_err());
    }

    proptest! {
        /// Every representable millisecond round-trips through the string form.
        #[test]
        fn round_trips(ms in 0i64..253_402_300_799_999) {
            let t = Timestamp(bson::DateTime::from_millis(ms));
            prop_assert_eq!(Timestamp::parse(t.to_value()).ok(), Some(t));
        }
    }
}
