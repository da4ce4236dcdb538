"""One module per schema revision; scripts/new_migration.sh writes them."""
