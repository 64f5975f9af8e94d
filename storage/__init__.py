"""Prompt Lab's store: the schema, the connection and the queries."""
