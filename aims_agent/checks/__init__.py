"""Checks: pure functions from (reference, window, settings) to measurements. No I/O, no clock."""
