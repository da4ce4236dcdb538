"""Exporters: each consumes judged check runs and publishes them to one destination."""
