"""Collectors: each turns bytes from one kind of source into validated rows for the window store."""
