-- chatd schema for MySQL / MariaDB, version 4.
--
-- Apply to an existing database (the operator creates it):
--   mariadb chatd < mysql.sql
-- chatd also applies it by itself when it finds no SchemaVersion table,
-- and after the steps of mysql-upgrade.sql when it finds an older version.
-- Every statement is idempotent (IF NOT EXISTS, INSERT IGNORE), so running
-- it again does no harm.  Statements end with ';' at the end of a line;
-- comments are whole lines starting with '--' (the build strips them).
--
-- Text is stored as given (any bytes, NUL included) and compared as bytes,
-- as store.h promises: names, descriptions and messages are binary
-- (VARBINARY, MEDIUMBLOB), so no charset check, no case folding and no
-- PAD SPACE ("bob" and "bob " are two users).  Lengths are in bytes and
-- cover the config bounds (max_name_bytes <= 1k, max_groupdesc_bytes
-- <= 1M, max_message_bytes <= 16M but see max_allowed_packet).
-- Foreign keys make a missing user or group an error we can report.

CREATE TABLE IF NOT EXISTS User (
	id		INT NOT NULL AUTO_INCREMENT,
	name		VARBINARY(1024) NOT NULL,
	pwhash		VARBINARY(255) NOT NULL,
	created		TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	PRIMARY KEY (id),
	UNIQUE KEY name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Friendship is mutual: both directions are stored.
CREATE TABLE IF NOT EXISTS Friend (
	userid		INT NOT NULL,
	friendid	INT NOT NULL,
	PRIMARY KEY (userid, friendid),
	KEY friendid (friendid),
	FOREIGN KEY (userid) REFERENCES User (id),
	FOREIGN KEY (friendid) REFERENCES User (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS AllGroup (
	id		INT NOT NULL AUTO_INCREMENT,
	groupname	VARBINARY(1024) NOT NULL,
	groupdesc	MEDIUMBLOB NOT NULL,
	creator		INT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY groupname (groupname),
	FOREIGN KEY (creator) REFERENCES User (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- id gives the join order of a group's members.  admin (version 2): named
-- by the creator; joinedat (version 2): unix time joined, 0 from before.
CREATE TABLE IF NOT EXISTS GroupUser (
	id		BIGINT NOT NULL AUTO_INCREMENT,
	groupid		INT NOT NULL,
	userid		INT NOT NULL,
	grouprole	ENUM('creator', 'normal') NOT NULL DEFAULT 'normal',
	admin		TINYINT NOT NULL DEFAULT 0,
	joinedat	BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (id),
	UNIQUE KEY groupid_userid (groupid, userid),
	KEY userid (userid),
	FOREIGN KEY (groupid) REFERENCES AllGroup (id),
	FOREIGN KEY (userid) REFERENCES User (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- id grows in the order stored: fetch oldest first, delete up to an id.
CREATE TABLE IF NOT EXISTS OfflineMessage (
	id		BIGINT NOT NULL AUTO_INCREMENT,
	userid		INT NOT NULL,
	message		MEDIUMBLOB NOT NULL,
	created		TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	smid		BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (id),
	KEY userid_id (userid, id),
	KEY userid_smid (userid, smid),
	FOREIGN KEY (userid) REFERENCES User (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- (sender, client message id) -> server message id for acknowledged
-- chats; done once the message was stored for its recipients.
CREATE TABLE IF NOT EXISTS ClientMsg (
	smid		BIGINT NOT NULL AUTO_INCREMENT,
	userid		INT NOT NULL,
	cmid		BIGINT NOT NULL,
	done		TINYINT NOT NULL DEFAULT 0,
	created		TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	PRIMARY KEY (smid),
	UNIQUE KEY userid_cmid (userid, cmid),
	FOREIGN KEY (userid) REFERENCES User (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Blocks (version 2): userid no longer receives blockedid's chats,
-- friend requests or group invitations.
CREATE TABLE IF NOT EXISTS Block (
	userid		INT NOT NULL,
	blockedid	INT NOT NULL,
	PRIMARY KEY (userid, blockedid),
	KEY blockedid (blockedid),
	FOREIGN KEY (userid) REFERENCES User (id),
	FOREIGN KEY (blockedid) REFERENCES User (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Resume tokens carry their user's generation; bumping it (logout
-- everywhere, a password change) revokes every token issued before.
-- No row: generation 0.
CREATE TABLE IF NOT EXISTS TokenGen (
	userid		INT NOT NULL,
	gen		BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (userid),
	FOREIGN KEY (userid) REFERENCES User (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The highest version present is the schema's version.
-- History (version 3): every delivered chat, one row per message (a
-- group message once), kept history_days.  conv: (low id << 32) | high
-- id for two users, -groupid for a group; created: Unix time in ms (a
-- member reads what came at or after its joinedat); pages go by it.
-- sender < 0: a one-to-one chat sent while the recipient blocked
-- -sender, readable by its sender only.  No foreign keys: rows
-- outlive a group until pruned; account deletion removes a sender's own.
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

-- HistoryConv (version 4): the one-to-one conversations userid received
-- chats in (conv as in History) and when the latest came (ms).  RESUME
-- reads History's conv_created for these and the user's groups only,
-- not every user's traffic since "since".  Written once per
-- conversation and history batch; pruned with History.
CREATE TABLE IF NOT EXISTS HistoryConv (
	userid		INT NOT NULL,
	conv		BIGINT NOT NULL,
	last		BIGINT NOT NULL,
	PRIMARY KEY (userid, conv)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS SchemaVersion (
	version		INT NOT NULL,
	PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO SchemaVersion (version) VALUES (1), (2), (3), (4);
