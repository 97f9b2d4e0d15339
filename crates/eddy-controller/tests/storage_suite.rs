//! openraft's own conformance suite, run against the controller's log store
//! and state machine on a real database.

use eddy_controller::sm::ControllerStateMachine;
use eddy_controller::types::{CONTROLLER_GROUP, ControllerTypes};
use eddy_storage::{RaftLogStore, Store, StoreOptions};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<ControllerTypes, RaftLogStore<ControllerTypes>, ControllerStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, RaftLogStore<ControllerTypes>, ControllerStateMachine), StorageError<ControllerTypes>> {
        let dir = TempDir::new().map_err(|e| StorageError::read(ControllerTypes::err_from_error(&e)))?;
        let store = Store::open(dir.path(), &StoreOptions::default())
            .map_err(|e| StorageError::read(ControllerTypes::err_from_error(&e)))?;
        let (sm, _map) = ControllerStateMachine::open(store.clone(), Default::default())
            .map_err(|e| StorageError::read(ControllerTypes::err_from_error(&e)))?;
        Ok((dir, RaftLogStore::new(store, CONTROLLER_GROUP), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_store_and_state_machine_pass_openraft_suite() {
    Suite::test_all(Builder).await.expect("openraft storage suite");
}
