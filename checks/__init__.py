"""Health checks: read-only probes of the world, one module per check type."""
