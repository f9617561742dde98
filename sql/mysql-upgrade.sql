-- chatd MySQL / MariaDB schema upgrades.
--
-- Built into chatd (src/mysql_upgrade.h).  A database whose
-- SchemaVersion is N < the current version runs the steps after
-- "-- @version N+1" up to the end, oldest first, under the schema lock;
-- then mysql.sql runs, creating the new tables and recording the
-- version.  DDL is not transactional here: every statement must be
-- idempotent (IF NOT EXISTS) so a start that failed half-way can run
-- them again.  Markers stand alone on their line; by hand:
--   mariadb chatd < mysql-upgrade.sql && mariadb chatd < mysql.sql

-- @version 2
-- group admins, and when a member joined (history shows it what came after)
ALTER TABLE GroupUser ADD COLUMN IF NOT EXISTS admin TINYINT NOT NULL DEFAULT 0;
ALTER TABLE GroupUser ADD COLUMN IF NOT EXISTS joinedat BIGINT NOT NULL DEFAULT 0;

-- @version 3
-- History is a new table (mysql.sql makes it): nothing existing changes.
