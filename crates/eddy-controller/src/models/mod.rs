//! The leader's telemetry task: receives workers' reports over a bounded
//! channel, keeps the models and histories ([`keeper`]), answers queries,
//! and forgets everything when this controller stops leading (the new
//! leader rebuilds from the reports workers resend to it).

pub use eddy_placement::keeper;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::ControllerRaft;
use keeper::{KeeperConfig, ModelKeeper, NodeReport};

/// Reports waiting for the task before new ones are refused.
pub const REPORT_QUEUE: usize = 1024;

pub enum ModelsRequest {
    Report(NodeReport),
    Describe(oneshot::Sender<Value>),
    Trace(oneshot::Sender<eddy_model::trace::Trace>),
    PlannerInputs(oneshot::Sender<keeper::PlannerInputs>),
}

/// Runs until the channel closes.
pub async fn run(raft: ControllerRaft, mut requests: mpsc::Receiver<ModelsRequest>, config: KeeperConfig) {
    let mut keeper = ModelKeeper::new(config);
    let mut server = raft.server_metrics();
    let mut leading = server.borrow_watched().state == ServerState::Leader;
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(ModelsRequest::Report(report)) => {
                    let node = report.node;
                    if keeper.observe(report) == keeper::Observed::Stale {
                        tracing::trace!(node, "telemetry report already seen");
                    }
                }
                Some(ModelsRequest::Describe(answer)) => {
                    let _ = answer.send(keeper.describe());
                }
                Some(ModelsRequest::Trace(answer)) => {
                    let _ = answer.send(keeper.trace());
                }
                Some(ModelsRequest::PlannerInputs(answer)) => {
                    let _ = answer.send(keeper.planner_inputs());
                }
                None => return,
            },
            changed = server.changed() => {
                if changed.is_err() {
                    return;
                }
                let now_leading = server.borrow_watched().state == ServerState::Leader;
                if leading && !now_leading {
                    tracing::info!(reports = keeper.reports(), "no longer controller leader; models forgotten");
                    keeper.clear();
                }
                leading = now_leading;
            }
        }
    }
}
