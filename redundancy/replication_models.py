"""Models of replication (the change log and the backup's position)."""
