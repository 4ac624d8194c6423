DROP TABLE failover_events;
