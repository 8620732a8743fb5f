//! End-to-end tests: the real blogql application over HTTP on `127.0.0.1:0`,
//! each test with a fresh embedded store in its own temp directory.

// A failed expectation in a test should panic with its message; that is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod account;
mod answers;
mod apq;
mod atomicity;
mod auth;
mod budgets;
mod cascade;
mod container;
mod costs;
mod crash;
mod deletion_plan;
mod disk;
mod fan_out;
mod faults;
mod federation;
mod feed;
mod helpers;
mod hostile;
mod http;
mod idempotency;
mod logs;
mod metrics;
mod mongo;
mod nodes;
mod otlp;
mod pagination;
mod payloads;
mod plain;
mod props;
mod races;
mod repair;
mod restart;
mod resume;
mod round_trips;
mod schema;
mod seeds;
mod slow_peers;
mod snapshot_reads;
mod sse;
mod staged;
mod subscriptions;
mod trusted;
mod validation;
