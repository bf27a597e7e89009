"""Plugin machinery: hook specs, entry-point loading, the registry, options read from factories."""
