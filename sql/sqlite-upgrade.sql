-- chatd SQLite schema upgrades.
--
-- Built into chatd (src/sqlite_upgrade.h).  A file whose PRAGMA
-- user_version is N < the current version runs the steps after
-- "-- @version N+1" up to the end, oldest first: those before version 5
-- in a BEGIN IMMEDIATE of their own, which records version 4; version
-- 5's copy in another (it writes the history file only); the later ones
-- in the same BEGIN IMMEDIATE as sqlite.sql, which runs next and creates
-- the new tables and indexes and sets user_version (store_sqlite.c: each
-- commit writes one file, so a crash between two leaves a state the next
-- start resumes from).  A step changes only tables that existed at the
-- version before it.  Markers stand alone on their line.

-- @version 2
-- group admins, and when a member joined (history shows it what came after)
ALTER TABLE GroupUser ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE GroupUser ADD COLUMN joinedat INTEGER NOT NULL DEFAULT 0;

-- @version 3
-- History is a new table; made here as version 3 had it so that later
-- steps can read it (sqlite.sql adds its indexes).
CREATE TABLE IF NOT EXISTS History (
	smid		INTEGER PRIMARY KEY,
	conv		INTEGER NOT NULL,
	sender		INTEGER NOT NULL,
	created		INTEGER NOT NULL,
	message		TEXT NOT NULL
);

-- @version 4
-- HistoryConv (see sqlite.sql), filled from the history kept so far: a
-- row's recipient is the half of conv that did not send it.
CREATE TABLE IF NOT EXISTS HistoryConv (
	userid		INTEGER NOT NULL,
	conv		INTEGER NOT NULL,
	last		INTEGER NOT NULL,
	PRIMARY KEY (userid, conv)
) WITHOUT ROWID;
INSERT OR IGNORE INTO HistoryConv (userid, conv, last)
    SELECT CASE WHEN abs(sender) = (conv >> 32) THEN conv & 4294967295
    ELSE conv >> 32 END, conv, max(created) FROM History WHERE conv >= 0
    GROUP BY 1, 2;

-- @version 5
-- History and HistoryConv move to the history file (attached as hist):
-- the history thread's transactions then lock that file only.  The
-- copy is idempotent and committed on its own; the main file's tables
-- are dropped (sqlite.sql) only after it, and only when the history
-- file holds all of their rows (else it runs again: store_sqlite.c).
CREATE TABLE IF NOT EXISTS hist.History (
	smid		INTEGER PRIMARY KEY,
	conv		INTEGER NOT NULL,
	sender		INTEGER NOT NULL,
	created		INTEGER NOT NULL,
	message		TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hist.HistoryConv (
	userid		INTEGER NOT NULL,
	conv		INTEGER NOT NULL,
	last		INTEGER NOT NULL,
	PRIMARY KEY (userid, conv)
) WITHOUT ROWID;
INSERT OR IGNORE INTO hist.History (smid, conv, sender, created, message)
    SELECT smid, conv, sender, created, message FROM main.History;
INSERT INTO hist.HistoryConv (userid, conv, last)
    SELECT userid, conv, last FROM main.HistoryConv WHERE 1
    ON CONFLICT (userid, conv) DO UPDATE SET last = max(last, excluded.last);
