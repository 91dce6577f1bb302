//! redline: samples Redis, job queues, PostgreSQL and the host into Prometheus metrics, and
//! generates alert rules and dashboards from one thresholds file.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod artifacts;
pub mod catalog;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod expose;
pub mod generate;
pub mod http_client;
pub mod metrics;
pub mod names;
pub mod promql;
pub mod reload;
pub mod secret;
pub mod serve;
pub mod slo;
pub mod snapshot;
pub mod status;
pub mod template;
pub mod text;
pub mod thresholds;
