"""What operators watch: Prometheus metrics and a health verdict, served by each process on METRICS_PORT."""
