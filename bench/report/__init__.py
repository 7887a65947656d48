"""Reports are views: tables and figures rebuilt from result files, never from a rerun."""
