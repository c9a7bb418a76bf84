"""Per-target state: versioned record, lease, audit events, counter samples, specs."""
