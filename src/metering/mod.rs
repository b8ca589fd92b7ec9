//! Usage metering: the plugin that turns each finished request into a usage record and
//! metrics, the batched background writer, and the Prometheus recorder.

pub mod metrics;
pub mod writer;

pub use writer::UsageWriter;
