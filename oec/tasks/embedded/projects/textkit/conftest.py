"""Makes the textkit package importable when pytest runs from the project root."""
