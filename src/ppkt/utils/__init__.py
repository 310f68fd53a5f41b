"""Small shared helpers: atomic file writes, weight files, strict state-dict loading, seeding."""
