"""Report code for the report stage (pipeline/stages/report.py) and `camloc compare`: DataFrame →
DataFrame transforms (tables, per-image cubes, bootstrap CIs), then writers (leaderboard, plots, gallery)."""
