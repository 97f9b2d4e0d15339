//! The placement policy lives in `eddy-core` (the controller replicates
//! it); re-exported here, where the planners read it.

pub use eddy_core::policy::{PlacementMode, PlacementSettings, Policy, PolicyName};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_field_and_toml_refuses_unknown_ones() {
        assert!(Policy::default().validate().is_ok());
        let bad = Policy { utilisation_ceiling: 1.5, ..Policy::default() };
        assert!(bad.validate().unwrap_err().contains("utilisation_ceiling"));
        let bad = Policy { min_gain: f64::NAN, ..Policy::default() };
        assert!(bad.validate().unwrap_err().contains("min_gain"));
        let parsed: Policy = toml::from_str("name = \"count\"\nslo_p99_ms = 50\n").expect("valid policy");
        assert_eq!((parsed.name, parsed.slo_p99_ms), (PolicyName::Count, 50.0));
        let unknown = toml::from_str::<Policy>("slo_p99 = 50\n").unwrap_err().to_string();
        assert!(unknown.contains("slo_p99"), "{unknown}");
    }
}
