"""Reports: charts and downloadable tables from typed results (used by the dashboard and the CLI)."""
