/* generated from sql/sqlite-upgrade.sql; do not edit */
static const char sqlite_upgrade[] =
"-- chatd SQLite schema upgrades.\n"
"--\n"
"-- Built into chatd (src/sqlite_upgrade.h).  A file whose PRAGMA\n"
"-- user_version is N < the current version runs the steps after\n"
"-- \"-- @version N+1\" up to the end, oldest first, in the same BEGIN\n"
"-- IMMEDIATE as sqlite.sql, which runs next and creates the new tables\n"
"-- and indexes and sets user_version.  A step changes only tables that\n"
"-- existed at the version before it.  Markers stand alone on their line.\n"
"\n"
"-- @version 2\n"
"-- group admins, and when a member joined (history shows it what came after)\n"
"ALTER TABLE GroupUser ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;\n"
"ALTER TABLE GroupUser ADD COLUMN joinedat INTEGER NOT NULL DEFAULT 0;\n"
"\n"
"-- @version 3\n"
"-- History is a new table (sqlite.sql makes it): nothing existing changes.\n"
;
