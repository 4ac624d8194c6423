DROP TABLE log_events;
