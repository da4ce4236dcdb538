"""The check kinds a config names (`kind:`), one module each, registered in `checks.base`."""
