// figment's Jail closures return figment::Error, a large error type.
#![allow(clippy::result_large_err)]

use figment::Jail;

use super::*;

const MANIFEST: &str = r#"
[node]
id = 2
listen_addr = "127.0.0.1:7102"
data_dir = "data/node2"
zone = "zone-b"
capacity_cores = 2.0
price_per_hour = 0.12
roles = ["controller", "worker"]

[controller]
initial_members = [
  { id = 1, addr = "127.0.0.1:7101" },
  { id = 2, addr = "127.0.0.1:7102" },
  { id = 3, addr = "127.0.0.1:7103" },
]

[cluster]
partition_count = 16
replication_factor = 3
"#;

fn load_in_jail(jail: &mut Jail, manifest: &str) -> Result<NodeConfig, ConfigError> {
    jail.create_file("node.toml", manifest).expect("write manifest");
    NodeConfig::load(NodeConfig::default(), Some(Path::new("node.toml")))
}

#[test]
fn a_good_manifest_loads() {
    Jail::expect_with(|jail| {
        let config = load_in_jail(jail, MANIFEST).expect("valid");
        assert_eq!(config.node.id, 2);
        assert_eq!(config.node.zone, "zone-b");
        assert_eq!(config.advertise_addr(), "127.0.0.1:7102");
        assert_eq!(config.controller.initial_members.len(), 3);
        assert_eq!(config.settings(), ClusterSettings { partition_count: 16, replication_factor: 3 });
        Ok(())
    });
}

#[test]
fn environment_overrides_fields_and_ignores_client_variables() {
    Jail::expect_with(|jail| {
        jail.set_env("EDDY_NODE__ZONE", "zone-z");
        jail.set_env("EDDY_NODE__PRICE_PER_HOUR", "0.5");
        jail.set_env("EDDY_LIVENESS__DOWN_AFTER_MS", "20000");
        jail.set_env("EDDY_ENDPOINTS", "127.0.0.1:1");
        let config = load_in_jail(jail, MANIFEST).expect("valid");
        assert_eq!(config.node.zone, "zone-z");
        assert_eq!(config.node.price_per_hour, 0.5);
        assert_eq!(config.liveness.down_after_ms, 20_000);
        Ok(())
    });
}

fn error_for(manifest: &str) -> ConfigError {
    let mut out = None;
    Jail::expect_with(|jail| {
        out = Some(load_in_jail(jail, manifest).expect_err("must be refused"));
        Ok(())
    });
    out.expect("jail ran")
}

#[test]
fn an_unknown_field_is_named() {
    let err = error_for(&MANIFEST.replace("zone = ", "zonee = "));
    assert_eq!(err.field, "node.zonee", "{err}");
    assert!(err.reason.contains("unknown field"), "{err}");
}

#[test]
fn a_wrong_type_is_named() {
    let err = error_for(&MANIFEST.replace("\nid = 2\n", "\nid = \"two\"\n"));
    assert_eq!(err.field, "node.id", "{err}");
}

#[test]
fn out_of_range_values_are_named() {
    let err = error_for(&MANIFEST.replace("capacity_cores = 2.0", "capacity_cores = -1.0"));
    assert_eq!(err.field, "node.capacity_cores", "{err}");
    let err = error_for(&MANIFEST.replace("replication_factor = 3", "replication_factor = 0"));
    assert_eq!(err.field, "cluster.replication_factor", "{err}");
    let err = error_for(&MANIFEST.replace("roles = [\"controller\", \"worker\"]", "roles = [\"boss\"]"));
    assert_eq!(err.field, "node.roles.0", "{err}");
}

#[test]
fn a_controller_must_be_an_initial_member_at_its_own_address() {
    let err =
        error_for(&MANIFEST.replace("{ id = 2, addr = \"127.0.0.1:7102\" }", "{ id = 4, addr = \"127.0.0.1:7104\" }"));
    assert_eq!(err.field, "controller.initial_members", "{err}");
    let err =
        error_for(&MANIFEST.replace("{ id = 2, addr = \"127.0.0.1:7102\" }", "{ id = 2, addr = \"127.0.0.1:9\" }"));
    assert!(err.reason.contains("advertises"), "{err}");
}

#[test]
fn a_worker_only_node_need_not_be_a_member() {
    let manifest = MANIFEST.replace("id = 2\n", "id = 7\n").replace("[\"controller\", \"worker\"]", "[\"worker\"]");
    Jail::expect_with(|jail| {
        let config = load_in_jail(jail, &manifest).expect("valid");
        assert!(!config.has_role(Role::Controller));
        Ok(())
    });
}

#[test]
fn timeouts_must_be_ordered() {
    let manifest = format!("{MANIFEST}\n[liveness]\nsuspect_after_ms = 100\nheartbeat_interval_ms = 200\n");
    let err = error_for(&manifest);
    assert_eq!(err.field, "liveness.suspect_after_ms", "{err}");
}

#[test]
fn a_missing_file_is_reported() {
    let err = NodeConfig::load(NodeConfig::default(), Some(Path::new("/nonexistent/eddy.toml"))).unwrap_err();
    assert_eq!(err.field, "--config");
}

#[test]
fn the_dev_config_is_valid() {
    NodeConfig::dev(Path::new("eddy-data"), DEV_ADDR).validate().expect("dev config validates");
}
