"""alerts: the alert state machine (pure) and its Kafka service; rules from alerts/default_rules.yaml."""
