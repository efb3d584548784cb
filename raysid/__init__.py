"""raysid: sweeps and ablations for semantic-ID music recommendation."""
