"""A HiveServer2-protocol test server (TLS, SASL PLAIN, failure modes) and its pytest fixtures."""
