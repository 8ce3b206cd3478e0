"""Makes the cronlite package importable when pytest runs from the project root."""
