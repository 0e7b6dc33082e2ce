"""Keeping devices in step: the change feed, its notifier, and the Diff."""
