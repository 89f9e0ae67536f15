"""MLflow's metadata database: PostgreSQL in the cluster, or RDS on eks."""
