"""Database engine, sessions, schema and backups."""
