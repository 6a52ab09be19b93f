"""RQ job functions: thin wrappers that open an app context and call a service."""
