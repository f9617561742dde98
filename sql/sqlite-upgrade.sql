-- chatd SQLite schema upgrades.
--
-- Built into chatd (src/sqlite_upgrade.h).  A file whose PRAGMA
-- user_version is N < the current version runs the steps after
-- "-- @version N+1" up to the end, oldest first, in the same BEGIN
-- IMMEDIATE as sqlite.sql, which runs next and creates the new tables
-- and indexes and sets user_version.  A step changes only tables that
-- existed at the version before it.  Markers stand alone on their line.

-- @version 2
-- group admins, and when a member joined (history shows it what came after)
ALTER TABLE GroupUser ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE GroupUser ADD COLUMN joinedat INTEGER NOT NULL DEFAULT 0;

-- @version 3
-- History is a new table (sqlite.sql makes it): nothing existing changes.
