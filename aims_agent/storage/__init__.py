"""Evidence storage: SQLAlchemy tables and the single-writer store."""
