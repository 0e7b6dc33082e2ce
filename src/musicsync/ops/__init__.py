"""Running a server: administration, maintenance jobs, backups."""
