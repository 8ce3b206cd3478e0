"""Makes the kvstore package importable when pytest runs from the project root."""
