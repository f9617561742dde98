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
-- History is a new table; made here as version 3 had it so that later
-- steps can read it.
CREATE TABLE IF NOT EXISTS History (
	smid		BIGINT NOT NULL,
	conv		BIGINT NOT NULL,
	sender		INT NOT NULL,
	created		BIGINT NOT NULL,
	message		MEDIUMBLOB NOT NULL,
	PRIMARY KEY (smid),
	KEY conv_created (conv, created, smid),
	KEY sender (sender),
	KEY created (created)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- @version 4
-- HistoryConv (see mysql.sql), filled from the history kept so far: a
-- row's recipient is the half of conv that did not send it.
CREATE TABLE IF NOT EXISTS HistoryConv (
	userid		INT NOT NULL,
	conv		BIGINT NOT NULL,
	last		BIGINT NOT NULL,
	PRIMARY KEY (userid, conv)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT IGNORE INTO HistoryConv (userid, conv, last)
    SELECT CASE WHEN ABS(sender) = (conv >> 32) THEN conv & 4294967295
    ELSE conv >> 32 END, conv, MAX(created) FROM History WHERE conv >= 0
    GROUP BY 1, 2;
