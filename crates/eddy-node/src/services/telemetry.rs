//! The controller side of telemetry: decodes workers' reports for the
//! leader's models, and answers model and trace queries.

use eddy_controller::Controller;
use eddy_controller::models::keeper::{NodeReport, PartitionReport};
use eddy_proto::v1::{TelemetryAck, TelemetryReport};
use futures::StreamExt;
use tonic::{Status, Streaming};

use crate::status::controller_status;

/// Feeds a worker's report stream to the models until the worker hangs
/// up; ends with "not leader" (and the leader's address) if this node
/// stops leading meanwhile.
pub async fn receive(controller: &Controller, mut reports: Streaming<TelemetryReport>) -> Result<TelemetryAck, Status> {
    let (mut accepted, mut refused) = (0, 0);
    while let Some(report) = reports.next().await {
        let report = report_from_wire(report?)?;
        match controller.report_telemetry(report) {
            Ok(()) => accepted += 1,
            // The models are behind: this second is lost, the stream goes on.
            Err(eddy_controller::ControllerError::Busy { .. }) => {}
            // Not from a member: dropped, so it cannot steer or grow the models.
            Err(eddy_controller::ControllerError::Refused(why)) => {
                if refused == 0 {
                    tracing::warn!(reason = %why, "telemetry refused");
                }
                refused += 1;
            }
            Err(err) => return Err(controller_status(&err)),
        }
    }
    Ok(TelemetryAck { accepted, refused })
}

fn report_from_wire(report: TelemetryReport) -> Result<NodeReport, Status> {
    let node = report.node.ok_or_else(|| Status::invalid_argument("telemetry report without its node"))?;
    let finite = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(Status::invalid_argument(format!("telemetry: {name} must be a non-negative number, got {v}")))
        }
    };
    let partitions = report
        .partitions
        .into_iter()
        .map(|p| {
            Ok(PartitionReport {
                partition: p.partition,
                leader: p.leader,
                events: p.events,
                events_per_s: finite("events_per_s", p.events_per_s)?,
                bytes_per_s: finite("bytes_per_s", p.bytes_per_s)?,
                cpu_ms_per_event: p.cpu_ms_per_event.map(|c| finite("cpu_ms_per_event", c)).transpose()?,
                commit_p99_ms: finite("commit_p99_ms", p.commit_p99_ms)?,
                processed_p99_ms: finite("processed_p99_ms", p.processed_p99_ms)?,
                queue_depth: p.queue_depth,
                log_bytes: p.log_bytes,
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(NodeReport {
        node: node.node_id,
        at_ms: node.at_ms,
        interval_ms: node.interval_ms,
        capacity_cores: finite("capacity_cores", node.capacity_cores)?,
        price_per_hour: finite("price_per_hour", node.price_per_hour)?,
        host_cpu_busy: finite("host_cpu_busy", node.host_cpu_busy)?,
        process_cpu_cores: finite("process_cpu_cores", node.process_cpu_cores)?,
        processor_cpu_cores: finite("processor_cpu_cores", node.processor_cpu_cores)?,
        processed_events: node.processed_events,
        processed_p50_ms: finite("processed_p50_ms", node.processed_p50_ms)?,
        processed_p99_ms: finite("processed_p99_ms", node.processed_p99_ms)?,
        partitions,
    })
}
